//! The scheduler: the periodic tasks of `[schedule]` (`library_sync`, `wanted_retry`,
//! `upgrade`, `cleanup`), each a cron expression read in `[schedule] timezone`.
//!
//! A task is one registration: its name (the `[schedule]` key that holds its expression)
//! and an async run that answers counts or an error ([`Scheduler::register`]). A task with
//! an expression but no run is listed as not available. One task runs at most once at a
//! time: a due time or a request that comes while it runs starts nothing (`409` from the
//! API). Every run is kept in the store (state key `schedule.<task>`: start, end, what
//! started it, counts, error; the last [`RUNS_KEPT`]). At start the scheduler reads these
//! records: a task whose next time after its last run (or after the daemon first knew it)
//! has passed while the daemon was down runs once, now, however many times it was missed.
//!
//! The scheduler is one task on the actix `System` arbiter (the runs are futures on it too;
//! blocking work goes to `spawn_blocking`). [`ScheduleHandle`] is what the API holds: the
//! board it lists (updated by the scheduler) and a channel to ask for a run.

pub mod tasks;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use croner::Cron;
use cuewarden_actors::store::{Change, Store};
use cuewarden_actors::time::now_ms;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::config::ScheduleSettings;

/// What a run counted (`jobs_deleted`, `woken`, …).
pub type Counts = BTreeMap<String, u64>;
/// One run of a task: counts, or why it failed.
pub type RunFuture = Pin<Box<dyn Future<Output = Result<Counts, String>>>>;
/// What a task runs; called once per run, on the `System` arbiter.
pub type TaskRun = Rc<dyn Fn() -> RunFuture>;

/// Runs kept per task in the store.
pub const RUNS_KEPT: usize = 20;
/// The store's state key of a task is this plus its name.
pub const STATE_PREFIX: &str = "schedule.";
/// The longest the scheduler sleeps before it looks at the clock again (so a changed
/// clock or a suspended machine is noticed).
pub const TICK: Duration = Duration::from_secs(30);

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its cron time came.
    Schedule,
    /// `POST /schedule/{task}/run`.
    Manual,
    /// Its time passed while the daemon was down.
    Missed,
}

/// One run, as kept in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When it started (ms since the epoch).
    pub started_at_ms: i64,
    /// When it ended; `None` while it runs.
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    /// What started it.
    pub trigger: Trigger,
    /// What it counted.
    #[serde(default)]
    pub counts: Counts,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A task's record in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// When the daemon first knew the task (the start of the first missed-run window).
    pub since_ms: i64,
    /// The last runs, oldest first.
    #[serde(default)]
    pub runs: Vec<RunRecord>,
}

/// The answer to a request for a run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunAnswer {
    /// It started.
    Started,
    /// It is running; no second run is started.
    AlreadyRunning,
    /// No such task.
    Unknown,
    /// Known, but this build (or this configuration) has nothing to run for it.
    NotAvailable,
    /// The scheduler is not running (the daemon stops).
    NotRunning,
}

/// One task as the API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// Its name.
    pub task: String,
    /// Its expression (`""`: only when asked).
    pub expression: String,
    /// Whether there is something to run.
    pub available: bool,
    /// Whether a run is going on.
    pub running: bool,
    /// The next time it runs (RFC 3339 with the zone's offset).
    pub next_run: Option<String>,
    /// The last run (the one going on, if any).
    pub last_run: Option<RunView>,
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// RFC 3339 with the zone's offset.
    pub started_at: String,
    /// RFC 3339 with the zone's offset; `None` while it runs.
    pub finished_at: Option<String>,
    /// How long it took (ms).
    pub duration_ms: Option<i64>,
    /// What started it.
    pub trigger: Trigger,
    /// What it counted.
    pub counts: Counts,
    /// Why it failed.
    pub error: Option<String>,
}

/// `at_ms` in `zone`, RFC 3339 with the offset (`2026-12-01T04:30:00+01:00`).
pub fn format_in(zone: &TimeZone, at_ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(at_ms) {
        Ok(ts) => ts
            .to_zoned(zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => String::from("invalid-timestamp"),
    }
}

/// The first time `cron` matches strictly after `after_ms`, read in `zone` (ms).
pub fn next_after(cron: &Cron, zone: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = jiff::Timestamp::from_millisecond(after_ms)
        .ok()?
        .to_zoned(zone.clone());
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|next| next.timestamp().as_millisecond())
}

/// Whether a run was missed: the first time after the last run (or `since`) is past.
pub fn missed(cron: &Cron, zone: &TimeZone, record: &TaskRecord, now_ms: i64) -> bool {
    let last = record
        .runs
        .last()
        .map_or(record.since_ms, |run| run.started_at_ms);
    next_after(cron, zone, last).is_some_and(|due| due <= now_ms)
}

/// One task on the board.
#[derive(Debug, Clone)]
struct Slot {
    task: String,
    expression: String,
    cron: Option<Cron>,
    available: bool,
    running: bool,
    next_ms: Option<i64>,
    last: Option<RunRecord>,
}

#[derive(Debug)]
struct Board {
    zone: TimeZone,
    zone_name: String,
    slots: Vec<Slot>,
}

impl Board {
    fn slot_mut(&mut self, task: &str) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|slot| slot.task == task)
    }
}

type Request = (String, oneshot::Sender<RunAnswer>);

/// What the API holds: the list and a way to ask for a run (cheap to clone; `Send`).
#[derive(Debug, Clone)]
pub struct ScheduleHandle {
    board: Arc<Mutex<Board>>,
    requests: mpsc::UnboundedSender<Request>,
}

/// The whole list, as `GET /schedule` answers it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// The zone the expressions are read in.
    pub timezone: String,
    /// Every task.
    pub tasks: Vec<TaskView>,
}

impl ScheduleHandle {
    /// Every task with its expression, last run and next run.
    pub fn list(&self) -> ScheduleView {
        let Ok(board) = self.board.lock() else {
            return ScheduleView {
                timezone: String::new(),
                tasks: Vec::new(),
            };
        };
        let zone = &board.zone;
        ScheduleView {
            timezone: board.zone_name.clone(),
            tasks: board
                .slots
                .iter()
                .map(|slot| TaskView {
                    task: slot.task.clone(),
                    expression: slot.expression.clone(),
                    available: slot.available,
                    running: slot.running,
                    next_run: slot
                        .next_ms
                        .filter(|_| slot.available)
                        .map(|ms| format_in(zone, ms)),
                    last_run: slot.last.as_ref().map(|run| RunView {
                        started_at: format_in(zone, run.started_at_ms),
                        finished_at: run.finished_at_ms.map(|ms| format_in(zone, ms)),
                        duration_ms: run.finished_at_ms.map(|end| end - run.started_at_ms),
                        trigger: run.trigger,
                        counts: run.counts.clone(),
                        error: run.error.clone(),
                    }),
                })
                .collect(),
        }
    }

    /// One task, as listed.
    pub fn task(&self, task: &str) -> Option<TaskView> {
        self.list().tasks.into_iter().find(|t| t.task == task)
    }

    /// Asks for a run of `task` now.
    pub async fn run_now(&self, task: &str) -> RunAnswer {
        let (reply, answer) = oneshot::channel();
        if self.requests.send((task.to_owned(), reply)).is_err() {
            return RunAnswer::NotRunning;
        }
        answer.await.unwrap_or(RunAnswer::NotRunning)
    }
}

/// The tasks before they start.
pub struct Scheduler {
    store: Store,
    board: Arc<Mutex<Board>>,
    runs: Vec<(String, TaskRun)>,
}

impl Scheduler {
    /// The tasks of `settings`, none runnable until registered.
    pub fn new(settings: &ScheduleSettings, store: Store) -> Self {
        let slots = settings
            .tasks
            .iter()
            .map(|t| Slot {
                task: t.task.to_owned(),
                expression: t.expression.clone(),
                cron: t.cron.clone(),
                available: false,
                running: false,
                next_ms: None,
                last: None,
            })
            .collect();
        Self {
            store,
            board: Arc::new(Mutex::new(Board {
                zone: settings.timezone.clone(),
                zone_name: settings.timezone_name.clone(),
                slots,
            })),
            runs: Vec::new(),
        }
    }

    /// Gives `task` its run. A name `[schedule]` does not know is added, run only when asked.
    pub fn register(&mut self, task: &str, run: TaskRun) {
        if let Ok(mut board) = self.board.lock() {
            match board.slot_mut(task) {
                Some(slot) => slot.available = true,
                None => board.slots.push(Slot {
                    task: task.to_owned(),
                    expression: String::new(),
                    cron: None,
                    available: true,
                    running: false,
                    next_ms: None,
                    last: None,
                }),
            }
        }
        self.runs.retain(|(name, _)| name != task);
        self.runs.push((task.to_owned(), run));
    }

    /// Starts the scheduler on the current arbiter; stop it with [`SchedulerTask::stop`].
    pub fn start(self) -> (ScheduleHandle, SchedulerTask) {
        let (sender, requests) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let handle = ScheduleHandle {
            board: self.board.clone(),
            requests: sender,
        };
        let task = actix_rt::spawn(run(self, requests, stopped));
        (handle, SchedulerTask { stop, task })
    }
}

/// The running scheduler.
pub struct SchedulerTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl SchedulerTask {
    /// Stops the scheduler; a run going on is dropped (it starts again when next due; the
    /// store keeps it as interrupted).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Reads every task's record (blocking).
fn read_records(store: &Store, tasks: &[String]) -> Vec<Option<TaskRecord>> {
    tasks
        .iter()
        .map(
            |task| match store.state_as::<TaskRecord>(&format!("{STATE_PREFIX}{task}")) {
                Ok(record) => record,
                Err(err) => {
                    warn!(task, error = %err, "cannot read the task's last runs; starting afresh");
                    None
                }
            },
        )
        .collect()
}

struct Running {
    records: BTreeMap<String, TaskRecord>,
    tasks: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

async fn run(
    scheduler: Scheduler,
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Scheduler { store, board, runs } = scheduler;
    let runs: BTreeMap<String, TaskRun> = runs.into_iter().collect();
    let (zone, names) = match board.lock() {
        Ok(board) => (
            board.zone.clone(),
            board
                .slots
                .iter()
                .map(|s| s.task.clone())
                .collect::<Vec<_>>(),
        ),
        Err(_) => return,
    };
    let reading = store.clone();
    let read = names.clone();
    let found = tokio::task::spawn_blocking(move || read_records(&reading, &read))
        .await
        .unwrap_or_default();
    let now = now_ms();
    let mut state = Running {
        records: BTreeMap::new(),
        tasks: BTreeMap::new(),
    };
    let mut due_now = Vec::new();
    let mut changes = Vec::new();
    for (task, record) in names
        .iter()
        .zip(found.into_iter().chain(std::iter::repeat(None)))
    {
        let mut record = record.unwrap_or_else(|| {
            let fresh = TaskRecord {
                since_ms: now,
                runs: Vec::new(),
            };
            changes.push(state_change(task, &fresh));
            fresh
        });
        // A run the daemon stopped in the middle of.
        if let Some(last) = record.runs.last_mut()
            && last.finished_at_ms.is_none()
        {
            last.error = Some("interrupted: the daemon stopped during the run".to_owned());
            changes.push(state_change(task, &record));
        }
        if let Ok(mut board) = board.lock()
            && let Some(slot) = board.slot_mut(task)
        {
            slot.last = record.runs.last().cloned();
            if let Some(cron) = &slot.cron {
                slot.next_ms = next_after(cron, &zone, now);
                if slot.available && missed(cron, &zone, &record, now) {
                    due_now.push(task.clone());
                }
            }
        }
        state.records.insert(task.clone(), record);
    }
    if !changes.is_empty()
        && let Err(err) = store.submit(changes).await
    {
        warn!(error = %err, "cannot record the scheduled tasks");
    }
    let (done_sender, mut done) = mpsc::unbounded_channel::<(String, Result<Counts, String>)>();
    let start = |state: &mut Running, task: &str, trigger: Trigger| -> RunAnswer {
        let Some(run) = runs.get(task) else {
            return match board.lock() {
                Ok(board) if board.slots.iter().any(|s| s.task == task) => RunAnswer::NotAvailable,
                _ => RunAnswer::Unknown,
            };
        };
        if state.tasks.contains_key(task) {
            return RunAnswer::AlreadyRunning;
        }
        let record = state.records.entry(task.to_owned()).or_default();
        let started = RunRecord {
            started_at_ms: now_ms(),
            finished_at_ms: None,
            trigger,
            counts: Counts::new(),
            error: None,
        };
        record.runs.push(started.clone());
        let excess = record.runs.len().saturating_sub(RUNS_KEPT);
        record.runs.drain(..excess);
        // Ordered before the end's record (one writer, submit order).
        drop(store.submit(vec![state_change(task, record)]));
        if let Ok(mut board) = board.lock()
            && let Some(slot) = board.slot_mut(task)
        {
            slot.running = true;
            slot.last = Some(started);
        }
        info!(task, ?trigger, "scheduled task started");
        let future = run();
        let done = done_sender.clone();
        let name = task.to_owned();
        let handle = actix_rt::spawn(async move {
            let result = future.await;
            let _ = done.send((name, result));
        });
        state.tasks.insert(task.to_owned(), handle);
        RunAnswer::Started
    };
    for task in due_now {
        info!(
            task,
            "a scheduled run was missed while the daemon was down; running it now"
        );
        start(&mut state, &task, Trigger::Missed);
    }
    loop {
        let now = now_ms();
        let next_due = board.lock().ok().and_then(|board| {
            board
                .slots
                .iter()
                .filter(|s| s.available)
                .filter_map(|s| s.next_ms)
                .min()
        });
        let wait = next_due.map_or(TICK, |due| {
            Duration::from_millis(u64::try_from(due.saturating_sub(now)).unwrap_or(0)).min(TICK)
        });
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(wait) => {
                let now = now_ms();
                let due: Vec<String> = match board.lock() {
                    Ok(mut board) => board
                        .slots
                        .iter_mut()
                        .filter(|s| s.available && s.next_ms.is_some_and(|at| at <= now))
                        .map(|slot| {
                            slot.next_ms = slot.cron.as_ref().and_then(|c| next_after(c, &zone, now));
                            slot.task.clone()
                        })
                        .collect(),
                    Err(_) => break,
                };
                for task in due {
                    if start(&mut state, &task, Trigger::Schedule) == RunAnswer::AlreadyRunning {
                        info!(task, "scheduled time came while the last run still goes on; not started again");
                    }
                }
            }
            Some((task, reply)) = requests.recv() => {
                let _ = reply.send(start(&mut state, &task, Trigger::Manual));
            }
            Some((task, result)) = done.recv() => {
                state.tasks.remove(&task);
                let Some(record) = state.records.get_mut(&task) else { continue };
                if let Some(last) = record.runs.last_mut() {
                    last.finished_at_ms = Some(now_ms());
                    match result {
                        Ok(counts) => {
                            info!(task, ?counts, "scheduled task finished");
                            last.counts = counts;
                        }
                        Err(error) => {
                            warn!(task, %error, "scheduled task failed");
                            last.error = Some(error);
                        }
                    }
                }
                if let Err(err) = store.submit(vec![state_change(&task, record)]).await {
                    warn!(task, error = %err, "cannot record the task's run");
                }
                if let Ok(mut board) = board.lock()
                    && let Some(slot) = board.slot_mut(&task)
                {
                    slot.running = false;
                    slot.last = record.runs.last().cloned();
                }
            }
        }
    }
    for (_, task) in state.tasks {
        task.abort();
    }
}

fn state_change(task: &str, record: &TaskRecord) -> Change {
    Change::PutState {
        key: format!("{STATE_PREFIX}{task}"),
        value: serde_json::to_value(record).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
