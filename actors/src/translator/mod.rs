//! The translation of one job: read the source subtitle, send its cues to the service in
//! batches sized to the service's limits (texts and bytes, with context cues around each
//! batch), check every batch comes back whole (halving a batch that does not), keep every
//! cue's index and timing, write the result next to the video as any subtitle.
//!
//! - **Integrity**: a cue's dressing (override blocks, wrapping tags, line breaks) is taken
//!   off before sending and put back after ([`text`]); an answer with a missing, extra,
//!   empty, merged or tag-losing text is never written: the batch is sent again in halves,
//!   down to one cue, and a cue that still fails keeps its source text and is listed in the
//!   job's `subtitle.translated` event (`failed_cues`).
//! - **Cost** ([`cost`]): identical lines are sent once per job (services without context),
//!   lines already translated by the same service for the same pair are taken from the
//!   store's cache, and a monthly character budget parks the job `waiting` instead of
//!   overspending. Requests, characters and bytes are in the job's events.
//! - **Service trouble**: a rate limit waits `Retry-After` and sends again (a long one parks
//!   the job); an exhausted quota parks the job until it resets; refused credentials fail
//!   the job at once with the service's explanation (no retry is burnt on them).

pub mod cost;
pub mod source;
pub mod text;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

pub use cost::Usage;
use text::Prepared;

use crate::clients::{LocalBoxFuture, TranslateError, TranslationRequest, TranslationService};
use crate::files::{subtitle_path, write_atomically};
use crate::job::{Job, Language};
use crate::refresh::refresh_after_write;
use crate::store::{Change, MachineTranslated, Store, modified_ms};
use crate::subtitle::{Cue, write_srt};
use crate::worker::{Outcome, Work, WorkReport, WorkerContext};

/// Times one cue alone is sent before it keeps its source text.
pub const SINGLE_CUE_ATTEMPTS: u32 = 2;
/// The longest `Retry-After` waited inside the job; a longer one parks it.
pub const MAX_INLINE_RATE_WAIT: Duration = Duration::from_secs(60);
/// Rate limits waited inside one job before it is parked.
pub const RATE_LIMIT_WAITS: u32 = 10;
/// The wait after a 429 without `Retry-After`.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(5);
/// How long a job waits after an exhausted quota when the service did not say.
pub const DEFAULT_QUOTA_WAIT: Duration = Duration::from_secs(6 * 3600);
/// Failed calls in a row (5xx, timeouts) before the attempt fails (retryable).
pub const UNAVAILABLE_ATTEMPTS: u32 = 3;

/// Translates the source subtitle of one job (a [`Work`] run by the
/// [`Worker`](crate::worker::Worker) shell).
#[derive(Debug, Clone, Copy, Default)]
pub struct Translator;

impl Work for Translator {
    fn run(job: Job, context: Rc<WorkerContext>) -> LocalBoxFuture<WorkReport> {
        Box::pin(async move {
            let outcome = translate(job.clone(), context.clone()).await;
            let mut report = WorkReport::from(outcome);
            if let Outcome::Written { path, detail, .. } = &report.outcome {
                let replaced = detail["replaced"].as_bool().unwrap_or(false);
                report.events = refresh_after_write(&job, path, replaced, &context).await;
            }
            report
        })
    }
}

/// What a translation cost and how it went, for the job's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Requests sent to the service.
    pub requests: u32,
    /// Characters sent (texts and context): what services bill.
    pub characters: u64,
    /// Bytes of text sent (texts and context).
    pub bytes: u64,
    /// Cues translated by the service in this attempt.
    pub translated_cues: usize,
    /// Cues whose translation came from the cache (or from an identical line).
    pub cached_cues: usize,
    /// Batches sent again in halves.
    pub halvings: u32,
    /// Rate limits waited.
    pub rate_limited: u32,
    /// Cues that kept their source text: (index, why).
    pub failed_cues: Vec<FailedCue>,
}

/// A cue the service could not translate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedCue {
    /// Its index in the source file.
    pub index: u32,
    /// Why.
    pub reason: String,
}

/// Why a translation stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Wait (quota, budget, long rate limit), then try again: what was translated is cached.
    Park {
        /// Why, for the user.
        reason: String,
        /// How long.
        wait: Duration,
    },
    /// The attempt failed.
    Fail {
        /// Why.
        error: String,
        /// Whether trying again may help.
        retryable: bool,
    },
}

/// What a translation runs with, besides the cues.
pub struct Session<'a> {
    /// The service.
    pub service: &'a dyn TranslationService,
    /// The store holding the cache (`None`: no cache).
    pub store: Option<&'a Store>,
    /// Monthly character budget.
    pub budget: Option<u64>,
    /// Characters sent this month.
    pub usage: &'a Usage,
    /// Source language.
    pub from: &'a Language,
    /// Target language.
    pub to: &'a Language,
    /// For the log.
    pub job: String,
    /// How long this attempt may send requests; then it parks for [`CONTINUE_AFTER`] and
    /// the next attempt goes on from the cache.
    pub run_for: Option<Duration>,
}

/// Requests sent at once (batches in flight): halves the wall time of a film over a
/// service with latency, while staying polite.
pub const IN_FLIGHT: usize = 2;

/// The pause between two slices of a long translation.
pub const CONTINUE_AFTER: Duration = Duration::from_secs(1);

/// One distinct text to translate, and the cues that carry it.
struct Unit {
    prepared: Prepared,
    cues: Vec<usize>,
}

fn chars(text: &str) -> u64 {
    text.chars().count() as u64
}

impl Session<'_> {
    /// Commits `changes` (cache entries, usage): a failure only costs the cache.
    async fn submit(&self, changes: Vec<Change>) {
        if let Some(store) = self.store
            && let Err(error) = store.submit(changes).await
        {
            warn!(job_id = %self.job, %error, "cannot store the translation cache or usage");
        }
    }

    /// The budget check before a request of `characters`.
    fn over_budget(&self, characters: u64, stats: &Stats) -> Option<Stop> {
        let budget = self.budget?;
        let (month, wait) = cost::month_of(crate::time::now_ms());
        let used = self.usage.used(self.service.name(), &month);
        (used.saturating_add(characters) > budget).then(|| Stop::Park {
            reason: format!(
                "the monthly character budget of {} for {budget} characters is spent ({used} sent in {month}); waiting for the next month ({})",
                self.service.name(),
                progress(stats)
            ),
            wait,
        })
    }

    /// Counts `characters` sent; answers the change that keeps the count.
    fn count_usage(&self, characters: u64) -> Change {
        let (month, _) = cost::month_of(crate::time::now_ms());
        self.usage.add(self.service.name(), &month, characters)
    }

    /// Translates the texts of `cues`: one text per cue, in order, each either translated
    /// and dressed as its source, or its source text (listed in [`Stats::failed_cues`]).
    pub async fn translate_cues(
        &self,
        cues: &[Cue],
    ) -> Result<(Vec<String>, Stats), (Stop, Stats)> {
        let mut stats = Stats::default();
        self.usage.load(self.store).await;
        let service = self.service;
        let name = service.name().to_owned();
        let limits = service.limits();
        let prepared: Vec<Prepared> = cues.iter().map(|c| Prepared::new(&c.text)).collect();
        // Identical lines are one unit unless the service reads context (then each cue
        // is sent in its place).
        let mut units: Vec<Unit> = Vec::new();
        let mut by_text: HashMap<String, usize> = HashMap::new();
        for (i, p) in prepared.iter().enumerate() {
            if p.send.trim().is_empty() {
                continue;
            }
            if limits.context == 0
                && let Some(&u) = by_text.get(&p.send)
            {
                units[u].cues.push(i);
                continue;
            }
            by_text.insert(p.send.clone(), units.len());
            units.push(Unit {
                prepared: p.clone(),
                cues: vec![i],
            });
        }
        let sends: Vec<String> = units.iter().map(|u| u.prepared.send.clone()).collect();
        let cached = cost::cached(
            self.store,
            &name,
            self.from.as_str(),
            self.to.as_str(),
            sends,
        )
        .await;
        let mut answers: Vec<Option<String>> = vec![None; units.len()];
        let mut pending = Vec::new();
        let mut used = Vec::new();
        for (u, hit) in cached.into_iter().enumerate() {
            match hit {
                Some(answer) if units[u].prepared.restore(&answer).is_ok() => {
                    answers[u] = Some(answer);
                    used.push(crate::store::translation_key(
                        &name,
                        self.from.as_str(),
                        self.to.as_str(),
                        &units[u].prepared.send,
                    ));
                }
                _ => pending.push(u),
            }
        }
        // What the cache answered was used today: `[translator] cache_days` counts from here.
        if !used.is_empty() {
            self.submit(vec![Change::TouchTranslations {
                keys: used,
                day: crate::store::day_of(crate::time::now_ms()),
            }])
            .await;
        }
        // Batches as large as the service allows.
        let (max_texts, max_bytes) = (limits.max_texts.max(1), limits.max_bytes.max(1));
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut bytes = 0;
        for u in pending {
            let len = units[u].prepared.send.len();
            match batches.last_mut() {
                Some(batch) if batch.len() < max_texts && bytes + len <= max_bytes => {
                    batch.push(u);
                    bytes += len;
                }
                _ => {
                    batches.push(vec![u]);
                    bytes = len;
                }
            }
        }
        let mut stack: Vec<Vec<usize>> = batches.into_iter().rev().collect();
        let mut single_attempts: HashMap<usize, u32> = HashMap::new();
        let mut failed: HashMap<usize, String> = HashMap::new();
        let mut unavailable = 0;
        let context_of = |batch: &[usize]| {
            if limits.context == 0 {
                return (Vec::new(), Vec::new());
            }
            let first = units[batch[0]].cues[0];
            let last = units[batch[batch.len() - 1]].cues[0];
            let before = prepared[first.saturating_sub(limits.context)..first]
                .iter()
                .map(|p| p.send.clone())
                .collect();
            let after = prepared
                [(last + 1).min(prepared.len())..(last + 1 + limits.context).min(prepared.len())]
                .iter()
                .map(|p| p.send.clone())
                .collect();
            (before, after)
        };
        let started = std::time::Instant::now();
        if !stack.is_empty()
            && let Some(wait) = self.usage.paused(&name, crate::time::now_ms())
        {
            // Another job heard the quota is spent: wait without asking again.
            let reason = format!("{name} quota exhausted; waiting for it to reset");
            return Err((Stop::Park { reason, wait }, stats));
        }
        while !stack.is_empty() {
            // At least one request per slice, so a slice always gets somewhere.
            if stats.requests > 0 && self.run_for.is_some_and(|most| started.elapsed() >= most) {
                let reason = format!(
                    "a long translation: it goes on in a moment ({})",
                    progress(&stats)
                );
                return Err((
                    Stop::Park {
                        reason,
                        wait: CONTINUE_AFTER,
                    },
                    stats,
                ));
            }
            // Up to IN_FLIGHT batches at once, as far as the budget allows.
            let mut group: Vec<(Vec<usize>, Vec<String>, u64)> = Vec::new();
            let mut requests = Vec::new();
            let mut group_characters = 0;
            while group.len() < IN_FLIGHT
                && let Some(batch) = stack.pop()
            {
                let texts: Vec<String> = batch
                    .iter()
                    .map(|&u| units[u].prepared.send.clone())
                    .collect();
                let (before, after) = context_of(&batch);
                let all = || texts.iter().chain(&before).chain(&after);
                let characters: u64 = all().map(|t| chars(t)).sum();
                let sent_bytes: u64 = all().map(|t| t.len() as u64).sum();
                if let Some(stop) = self.over_budget(group_characters + characters, &stats) {
                    if group.is_empty() {
                        return Err((stop, stats));
                    }
                    stack.push(batch);
                    break;
                }
                group_characters += characters;
                stats.requests += 1;
                stats.characters += characters;
                stats.bytes += sent_bytes;
                requests.push(service.translate(TranslationRequest {
                    texts: texts.clone(),
                    from: self.from.clone(),
                    to: self.to.clone(),
                    before,
                    after,
                }));
                group.push((batch, texts, characters));
            }
            let results = join_all(requests).await;
            let mut stop: Option<Stop> = None;
            let mut rate_wait: Option<Duration> = None;
            let mut unavailable_now = false;
            for ((batch, texts, characters), result) in group.into_iter().zip(results) {
                let bad = match result {
                    Ok(out) if out.len() == texts.len() => {
                        let usage = self.count_usage(characters);
                        unavailable = 0;
                        let checked: Result<Vec<()>, String> = batch
                            .iter()
                            .zip(&out)
                            .map(|(&u, answer)| {
                                units[u]
                                    .prepared
                                    .restore(answer)
                                    .map(|_| ())
                                    .map_err(|e| e.to_string())
                            })
                            .collect();
                        let checked = checked.and_then(|_| text::numbers_in_place(&texts, &out));
                        match checked {
                            Ok(_) => {
                                let entries: Vec<(String, String)> =
                                    texts.into_iter().zip(out.iter().cloned()).collect();
                                // The answers and the count in one commit.
                                self.submit(vec![
                                    usage,
                                    Change::PutTranslations {
                                        service: name.clone(),
                                        from: self.from.as_str().to_owned(),
                                        to: self.to.as_str().to_owned(),
                                        entries,
                                    },
                                ])
                                .await;
                                for (&u, answer) in batch.iter().zip(out) {
                                    answers[u] = Some(answer);
                                    stats.translated_cues += units[u].cues.len();
                                }
                                continue;
                            }
                            Err(reason) => {
                                self.submit(vec![usage]).await;
                                reason
                            }
                        }
                    }
                    Ok(out) => {
                        self.submit(vec![self.count_usage(characters)]).await;
                        format!("{} texts answered for {}", out.len(), texts.len())
                    }
                    Err(err @ (TranslateError::TooLarge | TranslateError::Parse(_))) => {
                        self.submit(vec![self.count_usage(characters)]).await;
                        err.to_string()
                    }
                    Err(TranslateError::RateLimited { retry_after }) => {
                        let wait = retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                        if wait > MAX_INLINE_RATE_WAIT || stats.rate_limited >= RATE_LIMIT_WAITS {
                            let reason = format!("{name} is rate limiting ({})", progress(&stats));
                            keep_first(&mut stop, Stop::Park { reason, wait });
                        } else {
                            stats.rate_limited += 1;
                            rate_wait = rate_wait.max(Some(wait));
                        }
                        stack.push(batch);
                        continue;
                    }
                    Err(TranslateError::QuotaExhausted { resets_in }) => {
                        let wait = resets_in.unwrap_or(DEFAULT_QUOTA_WAIT);
                        // A reset time the service gave holds for every job; a guess does
                        // not (a user's retry after the real reset must be able to go on).
                        if resets_in.is_some() {
                            let until = crate::time::now_ms().saturating_add(
                                i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                            );
                            self.usage.pause(&name, until);
                        }
                        let reason = format!(
                            "{name} quota exhausted; waiting for it to reset ({})",
                            progress(&stats)
                        );
                        keep_first(&mut stop, Stop::Park { reason, wait });
                        continue;
                    }
                    Err(err @ TranslateError::Unavailable(_)) => {
                        if !unavailable_now {
                            unavailable += 1;
                            unavailable_now = true;
                        }
                        if unavailable >= UNAVAILABLE_ATTEMPTS {
                            let error = format!("{name}: {err} ({})", progress(&stats));
                            keep_first(
                                &mut stop,
                                Stop::Fail {
                                    error,
                                    retryable: true,
                                },
                            );
                        }
                        stack.push(batch);
                        continue;
                    }
                    Err(err @ (TranslateError::Auth(_) | TranslateError::Permanent(_))) => {
                        keep_first(
                            &mut stop,
                            Stop::Fail {
                                error: format!("{name}: {err}"),
                                retryable: false,
                            },
                        );
                        continue;
                    }
                };
                warn!(job_id = %self.job, cues = batch.len(), reason = %bad, "translation batch rejected");
                if batch.len() > 1 {
                    stats.halvings += 1;
                    let (first, second) = batch.split_at(batch.len() / 2);
                    stack.push(second.to_vec());
                    stack.push(first.to_vec());
                } else {
                    let attempts = single_attempts.entry(batch[0]).or_insert(0);
                    *attempts += 1;
                    if *attempts < SINGLE_CUE_ATTEMPTS {
                        stack.push(batch);
                    } else {
                        failed.insert(batch[0], bad);
                    }
                }
            }
            if let Some(stop) = stop {
                return Err((stop, stats));
            }
            if let Some(wait) = rate_wait {
                info!(job_id = %self.job, seconds = wait.as_secs_f32(), "translator rate limited; waiting");
                tokio::time::sleep(wait).await;
            }
            if unavailable_now {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(unavailable))).await;
            }
        }
        let mut out: Vec<String> = cues.iter().map(|c| c.text.clone()).collect();
        for (u, unit) in units.iter().enumerate() {
            for &i in &unit.cues {
                match &answers[u] {
                    Some(answer) => match prepared[i].restore(answer) {
                        Ok(text) => out[i] = text,
                        Err(err) => stats.failed_cues.push(FailedCue {
                            index: cues[i].index,
                            reason: err.to_string(),
                        }),
                    },
                    None => stats.failed_cues.push(FailedCue {
                        index: cues[i].index,
                        reason: failed
                            .get(&u)
                            .cloned()
                            .unwrap_or_else(|| "not translated".to_owned()),
                    }),
                }
            }
        }
        let translated_units: usize = stats.translated_cues;
        let restored = cues.len() - stats.failed_cues.len() - blank(&prepared);
        stats.cached_cues = restored.saturating_sub(translated_units);
        stats.failed_cues.sort_by_key(|f| f.index);
        Ok((out, stats))
    }
}

/// Records `new` unless a stop is already recorded; a failure outranks a pause.
fn keep_first(stop: &mut Option<Stop>, new: Stop) {
    match (&*stop, &new) {
        (None, _) | (Some(Stop::Park { .. }), Stop::Fail { .. }) => *stop = Some(new),
        _ => {}
    }
}

/// Runs `futures` together; their outputs in order.
async fn join_all<T>(futures: Vec<LocalBoxFuture<T>>) -> Vec<T> {
    let mut futures: Vec<Option<LocalBoxFuture<T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Cues with nothing to translate.
fn blank(prepared: &[Prepared]) -> usize {
    prepared.iter().filter(|p| p.send.trim().is_empty()).count()
}

fn progress(stats: &Stats) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}, {} sent, {} translated so far",
        plural(u64::from(stats.requests), "request", "requests"),
        plural(stats.characters, "character", "characters"),
        plural(stats.translated_cues as u64, "cue", "cues"),
    )
}

/// Runs one translation attempt for `job`.
pub async fn translate(job: Job, context: Rc<WorkerContext>) -> Outcome {
    let fail = |error: String, retryable: bool| Outcome::Failed { error, retryable };
    let Some(service) = context.translator.clone() else {
        return fail("no translator configured".to_owned(), false);
    };
    let source = match source::find(&job, &context).await {
        Ok(source) => source,
        Err(reason) => {
            return Outcome::NothingFound {
                reason,
                retry_after: None,
            };
        }
    };
    let (cues, from, described) = (source.cues, source.from, source.described);
    let session = Session {
        service: service.as_ref(),
        store: context.store.as_ref(),
        budget: context.translation_budget,
        usage: &context.translation_usage,
        from: &from,
        to: &job.language,
        job: job.id.to_string(),
        run_for: Some(context.translate_for),
    };
    let (texts, stats) = match session.translate_cues(&cues).await {
        Ok(done) => done,
        Err((Stop::Park { reason, wait }, _)) => {
            return Outcome::NothingFound {
                reason,
                retry_after: Some(wait),
            };
        }
        Err((Stop::Fail { error, retryable }, _)) => return fail(error, retryable),
    };
    if stats.failed_cues.len() == cues.len() {
        let why = stats
            .failed_cues
            .first()
            .map_or_else(String::new, |f| f.reason.clone());
        return fail(
            format!("{} could not translate any cue: {why}", service.name()),
            true,
        );
    }
    let translated: Vec<Cue> = cues
        .iter()
        .zip(texts)
        .map(|(cue, text)| Cue {
            text,
            ..cue.clone()
        })
        .collect();
    write_translation(
        &job,
        &context,
        service.name(),
        described,
        from,
        translated,
        stats,
    )
    .await
}

async fn write_translation(
    job: &Job,
    context: &WorkerContext,
    service: &str,
    source: serde_json::Value,
    from: Language,
    cues: Vec<Cue>,
    stats: Stats,
) -> Outcome {
    let target = subtitle_path(&job.path, &job.language, false, false);
    let text = write_srt(&cues);
    // The provenance record (written by the JobManager) keeps the content's hash.
    let hash = crate::provenance::content_hash(text.as_bytes());
    let (path, libraries) = (target.clone(), context.libraries.clone());
    let written = tokio::task::spawn_blocking(move || {
        let replaced =
            write_atomically(&path, text.as_bytes(), &libraries).map_err(|e| e.to_string())?;
        let metadata = std::fs::metadata(&path)
            .map_err(|e| format!("cannot read {} back: {e}", path.display()))?;
        Ok::<_, String>((replaced, metadata))
    })
    .await;
    let (replaced, metadata) = match written {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            return Outcome::Failed {
                error,
                retryable: true,
            };
        }
        Err(err) => {
            return Outcome::Failed {
                error: err.to_string(),
                retryable: true,
            };
        }
    };
    // Recorded as machine-translated, so a later human subtitle replaces it.
    if let Some(store) = &context.store {
        let record = MachineTranslated {
            path: target.clone(),
            service: service.to_owned(),
            from: Some(from.clone()),
            source: source.clone(),
            len: metadata.len(),
            modified_ms: modified_ms(&metadata),
            written_at_ms: crate::time::now_ms(),
        };
        // The downloaded source kept for later attempts is not needed any more.
        let forget = Change::PutState {
            key: source::kept_key(job),
            value: serde_json::Value::Null,
        };
        if let Err(error) = store
            .submit(vec![Change::PutMachineTranslated(record), forget])
            .await
        {
            warn!(job_id = %job.id, %error, "cannot record the machine translation");
        }
    }
    Outcome::Written {
        path: target,
        producer: service.to_owned(),
        detail: json!({
            "machine_translated": true,
            "service": service,
            "source": source,
            "from": from,
            "to": job.language,
            "cues": cues.len(),
            "replaced": replaced,
            "content_hash": hash,
            "requests": stats.requests,
            "characters": stats.characters,
            "bytes": stats.bytes,
            "translated_cues": stats.translated_cues,
            "cached_cues": stats.cached_cues,
            "halvings": stats.halvings,
            "rate_limited": stats.rate_limited,
            "failed_cues": stats.failed_cues,
        }),
    }
}

#[cfg(test)]
mod tests;
