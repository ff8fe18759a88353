//! What a translation costs, and how it is kept low: the cache of translated lines in the
//! store (same text, language pair and service → no second request, across jobs and
//! restarts) and the optional monthly character budget per service.
//!
//! The budget counts characters sent (texts and context) per service and calendar month
//! (UTC). It lives in the store's `state` table under [`USAGE_KEY`] and in memory, shared by
//! every Translator on the actix thread, so two jobs running at once cannot both spend the
//! last characters.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::store::{Change, Store};

/// The `state` key of the characters sent per service this month.
pub const USAGE_KEY: &str = "translator_usage";

/// Characters one service was sent in one month.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthUsage {
    /// `2026-12`.
    #[serde(default)]
    pub month: String,
    /// Characters sent that month.
    #[serde(default)]
    pub characters: u64,
}

/// Characters sent per service this month (`None` until read from the store), and until
/// when a service said its quota is spent (so the next job waits without asking).
#[derive(Debug, Clone, Default)]
pub struct Usage(
    Rc<RefCell<Option<HashMap<String, MonthUsage>>>>,
    Rc<RefCell<HashMap<String, i64>>>,
);

/// The month (`2026-12`) of `now_ms` (UTC) and the time until the next one begins.
pub fn month_of(now_ms: i64) -> (String, Duration) {
    use jiff::ToSpan;
    let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else {
        return (String::new(), Duration::from_secs(3600));
    };
    let zoned = now.to_zoned(jiff::tz::TimeZone::UTC);
    let month = format!("{:04}-{:02}", zoned.year(), zoned.month());
    let next = jiff::civil::date(zoned.year(), zoned.month(), 1)
        .checked_add(1.month())
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_millisecond());
    let wait = next.map_or(3_600_000, |next| u64::try_from(next - now_ms).unwrap_or(0));
    (month, Duration::from_millis(wait.max(1000)))
}

impl Usage {
    /// Notes that `service`'s quota is spent until `until_ms`.
    pub fn pause(&self, service: &str, until_ms: i64) {
        self.1.borrow_mut().insert(service.to_owned(), until_ms);
    }

    /// How long `service`'s spent quota still lasts at `now_ms`, if it does.
    pub fn paused(&self, service: &str, now_ms: i64) -> Option<Duration> {
        let until = *self.1.borrow().get(service)?;
        (until > now_ms).then(|| Duration::from_millis(u64::try_from(until - now_ms).unwrap_or(0)))
    }

    /// Reads the usage from the store once (later calls answer at once).
    pub async fn load(&self, store: Option<&Store>) {
        if self.0.borrow().is_some() {
            return;
        }
        let loaded = match store.cloned() {
            Some(store) => tokio::task::spawn_blocking(move || {
                store.state_as::<HashMap<String, MonthUsage>>(USAGE_KEY)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .unwrap_or_else(|error| {
                warn!(%error, "cannot read the translator usage; counting from zero");
                None
            })
            .unwrap_or_default(),
            None => HashMap::new(),
        };
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(loaded);
        }
    }

    /// Characters `service` was sent in `month`.
    pub fn used(&self, service: &str, month: &str) -> u64 {
        self.0
            .borrow()
            .as_ref()
            .and_then(|all| all.get(service))
            .filter(|u| u.month == month)
            .map_or(0, |u| u.characters)
    }

    /// Counts `characters` sent to `service` in `month`; answers the change that keeps it.
    pub fn add(&self, service: &str, month: &str, characters: u64) -> Change {
        let mut slot = self.0.borrow_mut();
        let all = slot.get_or_insert_with(HashMap::new);
        let entry = all.entry(service.to_owned()).or_default();
        if entry.month != month {
            *entry = MonthUsage {
                month: month.to_owned(),
                characters: 0,
            };
        }
        entry.characters = entry.characters.saturating_add(characters);
        Change::PutState {
            key: USAGE_KEY.to_owned(),
            value: serde_json::to_value(&*all).unwrap_or_default(),
        }
    }
}

/// The cached answers for `texts`, in order (`None` where there is none, or no store).
pub async fn cached(
    store: Option<&Store>,
    service: &str,
    from: &str,
    to: &str,
    texts: Vec<String>,
) -> Vec<Option<String>> {
    let n = texts.len();
    let Some(store) = store.cloned() else {
        return vec![None; n];
    };
    let (service, from, to) = (service.to_owned(), from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || store.cached_translations(&service, &from, &to, &texts))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|error| {
            warn!(%error, "cannot read the translation cache; translating without it");
            vec![None; n]
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_in_utc() {
        // 2026-12-31T23:59:00Z
        let ms = 1_798_761_540_000;
        let (month, wait) = month_of(ms);
        assert_eq!(month, "2026-12");
        assert_eq!(wait, Duration::from_secs(60));
        let (month, _) = month_of(ms + 60_000);
        assert_eq!(month, "2027-01");
    }

    #[test]
    fn usage_restarts_each_month() {
        let usage = Usage::default();
        usage.add("deepl", "2026-12", 100);
        usage.add("deepl", "2026-12", 50);
        assert_eq!(usage.used("deepl", "2026-12"), 150);
        assert_eq!(usage.used("libretranslate", "2026-12"), 0);
        usage.add("deepl", "2027-01", 7);
        assert_eq!(usage.used("deepl", "2027-01"), 7);
        assert_eq!(usage.used("deepl", "2026-12"), 0);
    }
}
