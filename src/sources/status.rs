//! What each source is doing, for `/health/sources`: a small shared record a source
//! updates as it runs (connected, reconnecting, failing, what it detected, what it refused)
//! and the API reads. Cheap to clone; updates take a short lock and never block.

use std::sync::{Arc, Mutex, PoisonError};

use cuewarden_actors::time::{format_rfc3339, now_ms};
use serde::Serialize;

use super::{IntakeError, SourceInfo, Submitted};

/// Where a source is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceState {
    /// Started, not yet connected or not yet run.
    Starting,
    /// Connected (a socket) or watching (the watcher).
    Connected,
    /// Working without a connection of its own: served by the HTTP server (API, webhooks),
    /// or polling on a timer.
    Running,
    /// Disconnected; the next attempt is at `next_attempt`.
    Reconnecting {
        /// RFC 3339.
        next_attempt: String,
    },
    /// Not working, and not retrying by itself until something changes.
    Failing {
        /// Why, for people.
        error: String,
    },
    /// Switched off in the configuration.
    Disabled,
}

/// The last refusal a source met: what it saw and why it was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// RFC 3339.
    pub at: String,
    /// What the source named (a path, an item id).
    pub target: String,
    /// Why it was refused.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
struct Record {
    #[serde(flatten)]
    state: SourceState,
    /// When the state last changed (RFC 3339).
    since: String,
    /// When the source last heard from the outside (a frame, a webhook, an event).
    last_message: Option<String>,
    /// How the source works when that is worth saying (polling instead of a socket, and
    /// why).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// The last error, kept after recovering, with its time.
    last_error: Option<String>,
    last_error_at: Option<String>,
    /// Reconnections since start.
    reconnects: u64,
    /// Videos handed to the intake and accepted.
    detected: u64,
    /// Detections the intake refused (outside every library, not a video, …).
    refused: u64,
    last_refused: Option<Refusal>,
}

/// The shared status of one source.
#[derive(Debug, Clone)]
pub struct SourceStatus(Arc<Mutex<Record>>);

impl SourceStatus {
    /// A status in `state`.
    pub fn new(state: SourceState) -> Self {
        Self(Arc::new(Mutex::new(Record {
            state,
            since: format_rfc3339(now_ms()),
            last_message: None,
            note: None,
            last_error: None,
            last_error_at: None,
            reconnects: 0,
            detected: 0,
            refused: 0,
            last_refused: None,
        })))
    }

    fn update(&self, change: impl FnOnce(&mut Record)) {
        let mut record = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut record);
    }

    /// Moves to `state` (the time is kept only when the state really changes).
    pub fn set(&self, state: SourceState) {
        self.update(|record| {
            if record.state != state {
                record.state = state;
                record.since = format_rfc3339(now_ms());
            }
        });
    }

    /// The current state.
    pub fn state(&self) -> SourceState {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state
            .clone()
    }

    /// The source heard from the outside now.
    pub fn message(&self) {
        self.update(|record| record.last_message = Some(format_rfc3339(now_ms())));
    }

    /// Says how the source works (shown as `note`).
    pub fn note(&self, note: impl Into<String>) {
        self.update(|record| record.note = Some(note.into()));
    }

    /// An error happened (kept as the last error; the state is set separately).
    pub fn error(&self, error: impl Into<String>) {
        self.update(|record| {
            record.last_error = Some(error.into());
            record.last_error_at = Some(format_rfc3339(now_ms()));
        });
    }

    /// Disconnected: counts a reconnect and shows when the next attempt is.
    pub fn reconnecting(&self, next_attempt_ms: i64) {
        self.update(|record| record.reconnects += 1);
        self.set(SourceState::Reconnecting {
            next_attempt: format_rfc3339(next_attempt_ms),
        });
    }

    /// `n` videos were accepted by the intake.
    pub fn detected(&self, n: u64) {
        self.update(|record| record.detected += n);
    }

    /// The intake refused `target` because of `reason`.
    pub fn refused(&self, target: impl Into<String>, reason: impl Into<String>) {
        self.update(|record| {
            record.refused += 1;
            record.last_refused = Some(Refusal {
                at: format_rfc3339(now_ms()),
                target: target.into(),
                reason: reason.into(),
            });
        });
    }

    /// Counts what the intake answered for `target`: one detection, or one refusal.
    pub fn record(&self, target: &str, result: &Result<Submitted, IntakeError>) {
        match result {
            Ok(_) => self.detected(1),
            Err(err) => self.refused(target, err.to_string()),
        }
    }

    /// The status as `/health/sources` shows it, under the source's name and description.
    pub fn report(&self, info: &SourceInfo) -> serde_json::Value {
        let record = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut value = serde_json::to_value(record).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("name".to_owned(), serde_json::json!(info.name));
            object.insert("enabled".to_owned(), serde_json::json!(info.enabled));
            object.insert("detail".to_owned(), serde_json::json!(info.description));
        }
        value
    }
}

/// Every registered source with its status, in registration order.
#[derive(Debug, Clone, Default)]
pub struct SourceBoard(Arc<Vec<(SourceInfo, SourceStatus)>>);

impl SourceBoard {
    /// The board of these sources.
    pub fn new(sources: Vec<(SourceInfo, SourceStatus)>) -> Self {
        Self(Arc::new(sources))
    }

    /// The status of the source named `name`.
    pub fn status(&self, name: cuewarden_actors::EventSource) -> Option<&SourceStatus> {
        self.0
            .iter()
            .find(|(info, _)| info.name == name)
            .map(|(_, status)| status)
    }

    /// Each source's report, for `/health/sources`.
    pub fn reports(&self) -> Vec<serde_json::Value> {
        self.0
            .iter()
            .map(|(info, status)| status.report(info))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cuewarden_actors::EventSource;

    use super::*;

    const INFO: SourceInfo = SourceInfo {
        name: EventSource::JellyfinWs,
        enabled: true,
        description: "test",
    };

    #[test]
    fn the_report_shows_state_counts_and_the_last_refusal() {
        let status = SourceStatus::new(SourceState::Starting);
        status.set(SourceState::Connected);
        status.message();
        status.detected(3);
        status.refused("/elsewhere/a.mkv", "outside every configured library");
        status.reconnecting(0);
        let report = status.report(&INFO);
        assert_eq!(report["name"], "jellyfin_ws");
        assert_eq!(report["state"], "reconnecting");
        assert!(
            report["next_attempt"]
                .as_str()
                .unwrap()
                .starts_with("1970-01-01T00:00:00")
        );
        assert_eq!(report["reconnects"], 1);
        assert_eq!(report["detected"], 3);
        assert_eq!(report["refused"], 1);
        assert_eq!(report["last_refused"]["target"], "/elsewhere/a.mkv");
        assert!(report["last_message"].is_string());
    }

    #[test]
    fn the_board_finds_a_status_by_source_name() {
        let status = SourceStatus::new(SourceState::Running);
        let board = SourceBoard::new(vec![(INFO, status.clone())]);
        status.error("boom");
        let found = board.status(EventSource::JellyfinWs).unwrap();
        assert_eq!(found.report(&INFO)["last_error"], "boom");
        assert!(board.status(EventSource::Watcher).is_none());
    }
}
