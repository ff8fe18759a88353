//! cuewarden, the daemon: configuration, command line, HTTP API, sources, outbound clients
//! and the wiring of the actors from `cuewarden-actors`.
//!
//! [`app::run`] is the whole daemon; it takes its listener and shutdown future as
//! parameters so tests can bind port 0 and stop it when they like.

pub mod api;
pub mod app;
pub mod cli;
pub mod clients;
pub mod config;
pub mod control;
pub mod scan;
pub mod sources;

pub use app::run;
