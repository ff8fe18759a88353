//! `[schedule]`: when the periodic tasks run, as 5-field cron expressions.

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[schedule]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ScheduleSection {
    pub library_sync: String,
    pub cleanup: String,
    pub wanted_retry: String,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            library_sync: "0 3 * * *".to_owned(),
            cleanup: "30 4 * * *".to_owned(),
            wanted_retry: "0 */6 * * *".to_owned(),
        }
    }
}

impl RawSection for ScheduleSection {}

impl ScheduleSection {
    /// Checks every expression.
    pub(crate) fn check(&self, check: &mut Check) {
        for (key, expression) in [
            ("schedule.library_sync", &self.library_sync),
            ("schedule.cleanup", &self.cleanup),
            ("schedule.wanted_retry", &self.wanted_retry),
        ] {
            if let Err(reason) = check_cron(expression) {
                check.add(
                    key,
                    format!("{expression:?} is not a cron expression: {reason}"),
                );
            }
        }
    }
}

/// Checks the shape of a 5-field cron expression (minute hour day month weekday).
fn check_cron(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    }
    let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (low, high)) in fields.iter().zip(limits) {
        for part in field.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, "1"));
            if step.parse::<u32>().map_or(true, |s| s == 0) {
                return Err(format!("bad step in {part:?}"));
            }
            if range == "*" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            for bound in [a, b] {
                match bound.parse::<u32>() {
                    Ok(n) if (low..=high).contains(&n) => {}
                    _ => return Err(format!("{bound:?} is out of range {low}-{high}")),
                }
            }
        }
    }
    Ok(())
}
