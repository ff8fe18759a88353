//! `[schedule]`: when the periodic tasks run, as 5-field cron expressions (parsed by
//! `croner`), in `[schedule] timezone` (default: the system's).

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
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
    pub upgrade: String,
    /// An IANA zone name (`Europe/Berlin`, `UTC`); empty: the system's.
    pub timezone: String,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            library_sync: "0 3 * * *".to_owned(),
            cleanup: "30 4 * * *".to_owned(),
            wanted_retry: "0 */6 * * *".to_owned(),
            upgrade: "0 5 * * *".to_owned(),
            timezone: String::new(),
        }
    }
}

impl RawSection for ScheduleSection {}

/// One task's configured expression: `None` when it is switched off (`""`).
#[derive(Debug, Clone)]
pub struct TaskSchedule {
    /// The task (`library_sync`, `cleanup`, …).
    pub task: &'static str,
    /// The expression as written.
    pub expression: String,
    /// Parsed; `None` when the expression is empty (the task only runs when asked).
    pub cron: Option<Cron>,
}

/// `[schedule]`, checked.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Every task's expression, in the order they are listed.
    pub tasks: Vec<TaskSchedule>,
    /// The zone the expressions are read in.
    pub timezone: TimeZone,
    /// Its name, as shown by the API (`Europe/Berlin`, or the system's).
    pub timezone_name: String,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSection::default().settings().0
    }
}

impl ScheduleSettings {
    /// The schedule of `task`, if it is one.
    pub fn task(&self, task: &str) -> Option<&TaskSchedule> {
        self.tasks.iter().find(|t| t.task == task)
    }
}

/// Parses a 5-field cron expression (minute hour day month weekday; `@daily` and the
/// other nicknames too).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expression.trim())
        .map_err(|err| err.to_string())
}

/// The zone named `name` (empty: the system's, UTC if it cannot be found).
pub fn time_zone(name: &str) -> Result<(TimeZone, String), String> {
    let name = name.trim();
    if name.is_empty() {
        let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
        let label = zone.iana_name().unwrap_or("UTC").to_owned();
        return Ok((zone, label));
    }
    TimeZone::get(name)
        .map(|zone| (zone, name.to_owned()))
        .map_err(|err| format!("{name:?} is not a known time zone: {err}"))
}

impl ScheduleSection {
    /// Checks every expression and the zone.
    pub(crate) fn with_config(self, check: &mut Check) -> ScheduleSettings {
        let (settings, problems) = self.settings();
        for (key, message) in problems {
            check.add(key, message);
        }
        settings
    }

    /// The settings and the problems found (key, message).
    pub(crate) fn settings(self) -> (ScheduleSettings, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let mut tasks = Vec::new();
        for (task, expression) in [
            ("library_sync", self.library_sync),
            ("wanted_retry", self.wanted_retry),
            ("upgrade", self.upgrade),
            ("cleanup", self.cleanup),
        ] {
            let cron = if expression.trim().is_empty() {
                None
            } else {
                match parse_cron(&expression) {
                    Ok(cron) => Some(cron),
                    Err(reason) => {
                        problems.push((
                            format!("schedule.{task}"),
                            format!("{expression:?} is not a cron expression: {reason}"),
                        ));
                        None
                    }
                }
            };
            tasks.push(TaskSchedule {
                task,
                expression,
                cron,
            });
        }
        let (timezone, timezone_name) = match time_zone(&self.timezone) {
            Ok(zone) => zone,
            Err(reason) => {
                problems.push(("schedule.timezone".to_owned(), reason));
                (TimeZone::UTC, "UTC".to_owned())
            }
        };
        (
            ScheduleSettings {
                tasks,
                timezone,
                timezone_name,
            },
            problems,
        )
    }
}
