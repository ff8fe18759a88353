//! Store growth of waiting jobs, by simulation (`cargo bench --bench waiting`).
//!
//! 100,000 jobs for which no subtitle exists go through the real `ManagerCore` and the
//! real redb `Store` (a temporary directory) over a simulated month: the clock is the
//! core's `now`, moved in steps of `BENCH_TICK_MINUTES`; every step's changes are
//! committed before its actions are performed (persist first, as the actor does), and
//! every started download answers "nothing found". Prints the store file size as it
//! grows and the provider searches per day the "nothing found" schedule causes.
//!
//! Knobs (environment): `BENCH_WAITING_JOBS` (100000), `BENCH_DAYS` (30),
//! `BENCH_TICK_MINUTES` (10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use cuewarden_actors::job_manager::{Action, ManagerCore, ManagerSettings, NewRequest, Step};
use cuewarden_actors::store::{Change, MAX_BATCH, STORE_FILE_NAME, Store};
use cuewarden_actors::worker::Outcome;
use cuewarden_actors::{EventSource, Language, MediaItem, Priority};

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Commits the steps' changes in one batch, then performs their actions; repeats with the
/// steps those produce until nothing is left. Returns the downloads started.
fn settle(core: &mut ManagerCore, store: &Store, mut steps: Vec<Step>, now: i64) -> u64 {
    let mut searches = 0;
    while !steps.is_empty() {
        // Commits as the daemon's writer takes them, up to MAX_BATCH changes, a step never
        // split (one huge transaction would hold two versions of every page it touches).
        let mut batch: Vec<Change> = Vec::new();
        for step in &mut steps {
            if !batch.is_empty() && batch.len() + step.changes.len() > MAX_BATCH {
                store.submit_blocking(std::mem::take(&mut batch)).unwrap();
            }
            batch.append(&mut step.changes);
        }
        if !batch.is_empty() {
            store.submit_blocking(batch).unwrap();
        }
        let mut next = Vec::new();
        for action in steps.into_iter().flat_map(|s| s.actions) {
            match action {
                Action::Dispatch => next.push(core.dispatch(now)),
                Action::Load(id, kind) => next.push(core.loaded(id, kind, store.job(id), now)),
                Action::Start(job, kind) => {
                    searches += 1;
                    let outcome = Outcome::NothingFound {
                        reason: "no fr subtitle found (searched opensubtitles, podnapisi)"
                            .to_owned(),
                        retry_after: None,
                    };
                    next.push(core.finish(job.id, kind, outcome, now));
                }
                Action::Stop(_) => {}
            }
        }
        steps = next;
    }
    searches
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let jobs = env_number("BENCH_WAITING_JOBS", 100_000);
    let days = env_number("BENCH_DAYS", 30) as i64;
    let tick = env_number("BENCH_TICK_MINUTES", 10) as i64 * MINUTE_MS;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let file = dir.path().join(STORE_FILE_NAME);
    let settings = ManagerSettings {
        // Every due job runs in its tick: the schedule, not the slots, sets the searches.
        max_downloads: jobs.max(1),
        // One tick here is 10 minutes of the daemon's once-a-second checks.
        wakes_per_tick: jobs.max(1),
        ..ManagerSettings::default()
    };
    let mut core = ManagerCore::new(settings);
    let started = Instant::now();
    let t0 = cuewarden_actors::time::now_ms();
    let french = Language::parse("fr").unwrap();

    // Day 0: a library sync asks for every video; each first search finds nothing.
    let mut first = 0;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let mut steps = Vec::new();
        let mut new_ids = Vec::new();
        for n in chunk {
            let request = NewRequest {
                media: MediaItem {
                    path: PathBuf::from(format!(
                        "/srv/media/Shows/Show {}/Season 01/Show {} - S01E{:02}.mkv",
                        n / 20,
                        n / 20,
                        n % 20
                    )),
                    jellyfin_item_id: None,
                },
                languages: vec![french.clone()],
                auto_translate: false,
                source: EventSource::LibrarySync,
                priority: Priority::Low,
                existing: Vec::new(),
            };
            let accepted = core.request(&request, t0).unwrap();
            steps.push(Step {
                changes: accepted.changes,
                actions: Vec::new(),
            });
            new_ids.extend(accepted.new_ids);
        }
        settle(&mut core, &store, steps, t0);
        let queued = core.queue_new(&new_ids, t0);
        first += settle(&mut core, &store, vec![queued], t0);
    }
    let base = file_size(&file);
    println!(
        "waiting  {jobs} jobs waiting after their first search ({first} searches): store {:.1} MiB ({:.1} s)",
        mib(base),
        started.elapsed().as_secs_f64()
    );

    let mut per_day = vec![0u64; days as usize];
    let mut now = t0;
    while now < t0 + days * DAY_MS {
        now += tick;
        let day = ((now - t0 - 1) / DAY_MS) as usize;
        let woken = core.wake_due(now);
        let searches = settle(&mut core, &store, vec![woken], now);
        if let Some(count) = per_day.get_mut(day) {
            *count += searches;
        }
        if (now - t0) % DAY_MS == 0 {
            let day = (now - t0) / DAY_MS;
            if [1, 2, 7, 14, 21, 22, 28, 30].contains(&day) {
                println!(
                    "waiting  day {day:>2}: store {:.1} MiB (+{:.1} MiB), {} searches that day ({:.1} s)",
                    mib(file_size(&file)),
                    mib(file_size(&file).saturating_sub(base)),
                    per_day[day as usize - 1],
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    let total: u64 = per_day.iter().sum();
    println!(
        "waiting  {days} days: store grew {:.1} MiB ({:.1} -> {:.1} MiB), {} searches ({:.2} per job per day); per day: {:?}",
        mib(file_size(&file).saturating_sub(base)),
        mib(base),
        mib(file_size(&file)),
        total,
        total as f64 / jobs as f64 / days as f64,
        per_day
    );
    println!(
        "waiting  events left: {} ({} jobs held)",
        store.last_event_seq().unwrap_or(0),
        core.len()
    );
    store.close();
}
