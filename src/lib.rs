//! cuewarden, the daemon: configuration, command line, HTTP API, sources, outbound clients
//! and the wiring of the actors from `cuewarden-actors`.
//!
//! [`app::run`] is the whole daemon; it takes its listener and shutdown future as
//! parameters so tests can bind port 0 and stop it when they like.

/// `println!` for the CLI's answers: a closed pipe (`cuewarden events … | head -1`) ends the
/// process quietly with status 0 instead of a panic; another write error exits 1.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(err) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::control::stdout_failed(&err)
        }
    }};
}

pub mod api;
pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod control;
pub mod logging;
pub mod notify;
pub mod scan;
pub mod schedule;
pub mod sources;
pub mod upgrades;

pub use app::run;
