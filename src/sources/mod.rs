//! Sources: everything that notices a video and asks for its subtitles.
//!
//! A source only *detects*: it turns what it saw (an API request, a webhook, a Jellyfin
//! socket message, a file-system event, a library sync) into a [`Detection`] and hands it to
//! the one [`Intake`], which applies the rules every source shares (path mappings, the
//! library check, the video check, default languages) and submits the request to the
//! JobManager. Adding a source is one file here that calls [`Intake::submit`], plus one
//! line in `app::Components::from_settings` that registers it.

pub mod intake;

pub use intake::{Detection, Intake, IntakeError, Submitted, Target};

use cuewarden_actors::EventSource;

/// A registered source, as `/health/sources` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    /// Stable name (`api`, `webhook`, `jellyfin_ws`, …): the `source` of its events.
    pub name: EventSource,
    /// Whether it is switched on in the configuration.
    pub enabled: bool,
    /// What it does, for people.
    pub description: &'static str,
}
