//! Sources: everything that notices a video and asks for its subtitles.
//!
//! A source only *detects*: it turns what it saw (an API request, a webhook, a Jellyfin
//! socket message, a file-system event, a library sync) into a [`Detection`] and hands it to
//! the one [`Intake`], which applies the rules every source shares (path mappings, the
//! library check, the video check, default languages) and submits the request to the
//! JobManager. Adding a source is one file here that calls [`Intake::submit`], plus one
//! line in `app::Components::from_settings` that registers it.

pub mod intake;
pub mod jellyfin_ws;
pub mod library_sync;
pub mod status;
pub mod watcher;
pub mod webhook;

pub use intake::{Detection, Intake, IntakeError, IntakeRules, Submitted, Target};
pub use status::{SourceBoard, SourceState, SourceStatus};

use std::future::Future;
use std::pin::Pin;

use cuewarden_actors::EventSource;

/// Something that detects videos: started once the JobManager runs, stopped first at
/// shutdown. Implementations live one per file in this folder.
pub trait Source {
    /// Its name and description, as `/health/sources` lists it.
    fn info(&self) -> SourceInfo;
    /// Starts detecting, on the actix `System`; every detection goes to `intake`. The
    /// source keeps `status` up to date (state, messages, errors, what it detected), as
    /// `/health/sources` shows it.
    fn start(self: Box<Self>, intake: Intake, status: SourceStatus) -> SourceHandle;
}

type StopFuture = Pin<Box<dyn Future<Output = ()>>>;

/// How a started source is stopped.
pub struct SourceHandle {
    stop: Option<Box<dyn FnOnce() -> StopFuture>>,
}

impl SourceHandle {
    /// A source stopped by running `stop` to its end.
    pub fn new<F>(stop: impl FnOnce() -> F + 'static) -> Self
    where
        F: Future<Output = ()> + 'static,
    {
        Self {
            stop: Some(Box::new(move || Box::pin(stop()))),
        }
    }

    /// A source that runs as one task on the actix `System`: `run` gets a receiver that
    /// resolves when the source must stop; stopping waits until the task has ended.
    pub fn spawn<F>(run: impl FnOnce(tokio::sync::oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = ()> + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = actix_rt::spawn(run(stopped));
        Self::new(move || async move {
            let _ = stop.send(());
            let _ = task.await;
        })
    }

    /// A source with nothing to stop (it ends by itself).
    pub fn finished() -> Self {
        Self { stop: None }
    }

    /// Stops the source and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop().await;
        }
    }
}

/// What the API is, as a source: it is served by the HTTP server, not started here.
pub const API_SOURCE: SourceInfo = SourceInfo {
    name: EventSource::Api,
    enabled: true,
    description: "POST /api/v1/subtitles (cuewarden request uses it)",
};

/// The sources the HTTP server serves (always there, state `running`); their handlers find
/// their status on the [`SourceBoard`].
pub const SERVED_SOURCES: &[SourceInfo] = &[API_SOURCE, webhook::WEBHOOK_SOURCE];

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
