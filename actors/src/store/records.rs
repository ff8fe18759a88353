//! The typed records the store keeps besides jobs and events.
//!
//! Each is written as JSON after the record version byte (see `encode` and `decode`). Their JSON is
//! the one earlier builds wrote, and fields added since have serde defaults, so records
//! already on disk stay readable without a migration.

use serde::{Deserialize, Serialize};

/// What is known of one subtitle provider: a cooldown (rate limit, exhausted quota) and
/// its quota. The JobManager is its only writer; workers read it before calling.
///
/// Records written before quotas were tracked are `{"cooldown_until_ms", "reason"}`;
/// every field has a default so they read as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProviderState {
    /// The provider's name (`opensubtitles`). The record's key, so not in its JSON.
    #[serde(skip)]
    pub provider: String,
    /// No call to the provider before this instant (ms since epoch).
    #[serde(default)]
    pub cooldown_until_ms: Option<i64>,
    /// Why it cools down (`rate limited`, `quota exhausted`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Downloads left in the current quota period, when the provider says.
    #[serde(default)]
    pub quota_remaining: Option<u32>,
    /// When the quota period starts again (ms since epoch), when the provider says.
    #[serde(default)]
    pub quota_resets_at_ms: Option<i64>,
}

impl ProviderState {
    /// A provider cooling down until `until_ms` for `reason`.
    pub fn cooling_down(provider: &str, until_ms: i64, reason: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            cooldown_until_ms: Some(until_ms),
            reason: Some(reason.to_owned()),
            ..Self::default()
        }
    }

    /// The end of the cooldown, if it is still in force at `now_ms`.
    pub fn cooling_until(&self, now_ms: i64) -> Option<i64> {
        self.cooldown_until_ms.filter(|until| *until > now_ms)
    }
}
