//! What every per-job worker shares: the [`WorkerContext`] it runs with, the [`WorkReport`]
//! it answers (an [`Outcome`] plus what it learnt about providers), the
//! [`RunJob`]/[`StopWork`] messages the JobManager sends it, and the one actor shell
//! ([`Worker`]) that runs any [`Work`].
//!
//! Provider state (cooldowns, quotas) has one owner, the JobManager: a worker that hits a
//! rate limit reports a [`ProviderState`] with its outcome; the manager persists it with the
//! job's transition and puts it in the [`ProviderRegistry`] every worker reads.
//!
//! A kind of work (`Downloader`, `Translator`) is plain logic: an `impl Work` with no actix
//! in it. [`WorkKind`] names the kinds the JobManager schedules and answers everything that
//! differs between them (statuses, events, which work to start), so the manager never
//! matches on a kind itself and never imports a worker module. This file is the only
//! place that maps a kind to its work.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;

use crate::clients::{LocalBoxFuture, MediaServer, SubtitleProvider, TranslationService};
use crate::downloader::{Downloader, HearingImpaired};
use crate::event::kind;
use crate::job::{EventSource, Job, JobStatus, Language};
use crate::library::Libraries;
use crate::store::ProviderState;
use crate::translator::Translator;

/// What every worker shares: providers, translator, policy, cooldowns.
pub struct WorkerContext {
    /// Enabled subtitle providers.
    pub providers: Vec<Rc<dyn SubtitleProvider>>,
    /// The translation service, if configured.
    pub translator: Option<Rc<dyn TranslationService>>,
    /// Library roots; nothing is written outside them.
    pub libraries: Libraries,
    /// Languages a translation may start from, in order of preference.
    pub translate_from: Vec<Language>,
    /// Lowest acceptable candidate score.
    pub min_score: u32,
    /// Hearing-impaired preference.
    pub hearing_impaired: HearingImpaired,
    /// The media server told to refresh an item after a write, if configured.
    pub media_server: Option<Rc<dyn MediaServer>>,
    /// How a failed refresh is tried again.
    pub refresh_retry: RefreshRetry,
    /// `ffprobe`, when installed: embedded text tracks count as existing subtitles.
    pub ffprobe: Option<PathBuf>,
    /// What is known of each provider; written by the JobManager only.
    pub(crate) provider_states: ProviderRegistry,
    /// `ffmpeg`, when installed: an embedded text track may be translated from.
    pub ffmpeg: Option<PathBuf>,
    /// The store: the blacklist, the translation cache, the character budget (`None`: no
    /// cache); set by the JobManager.
    pub store: Option<crate::store::Store>,
    /// Most characters the translation service may be sent per calendar month (UTC).
    pub translation_budget: Option<u64>,
    /// How long one translation attempt runs before it parks itself for a moment and goes
    /// on in the next attempt from the cache (under the JobManager's worker timeout).
    pub translate_for: Duration,
    /// Characters sent per service this month, shared by every Translator.
    pub translation_usage: crate::translator::Usage,
    /// When a written subtitle is searched again for a better one.
    pub upgrades: UpgradePolicy,
}

/// When the upgrade pass searches a `done` subtitle again, and what replaces it
/// (`[languages] upgrade_below_score`, `upgrade_window_days`, `upgrade_margin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradePolicy {
    /// A subtitle that scored below this is searched again (machine translations always).
    pub below_score: u32,
    /// Only subtitles written this recently are searched again.
    pub window: Duration,
    /// A candidate replaces the subtitle only when it scores at least this much more.
    pub margin: u32,
    /// One search per subtitle per this period at most.
    pub min_interval: Duration,
}

impl Default for UpgradePolicy {
    /// Below 80, for 30 days, by 10 points, once a day.
    fn default() -> Self {
        Self {
            below_score: 80,
            window: Duration::from_secs(30 * 24 * 3600),
            margin: 10,
            min_interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// How a failed media-server refresh is tried again: exponential backoff with jitter from
/// `first_delay`, at most `retries` more times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRetry {
    /// The wait before the first retry (doubling after).
    pub first_delay: Duration,
    /// Retries after the first attempt.
    pub retries: usize,
}

impl Default for RefreshRetry {
    /// 1 s, 2 s, 4 s, 8 s (±jitter): about 15 s in all, so a Jellyfin that is restarting
    /// has a chance, while the job is not held for long.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            retries: 4,
        }
    }
}

impl WorkerContext {
    /// A context with no provider and no translator.
    pub fn new(libraries: Libraries) -> Self {
        Self {
            providers: Vec::new(),
            translator: None,
            libraries,
            translate_from: Vec::new(),
            min_score: 60,
            hearing_impaired: HearingImpaired::default(),
            media_server: None,
            refresh_retry: RefreshRetry::default(),
            ffprobe: None,
            provider_states: ProviderRegistry::default(),
            ffmpeg: None,
            store: None,
            translation_budget: None,
            translate_for: Duration::from_secs(480),
            translation_usage: crate::translator::Usage::default(),
            upgrades: UpgradePolicy::default(),
        }
    }

    /// What is known of `provider` (its cooldown, its quota).
    pub fn provider_state(&self, provider: &str) -> Option<ProviderState> {
        self.provider_states.get(provider)
    }
}

/// One provider as `/health/sources` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderHealth {
    /// Its name (`opensubtitles`).
    pub name: String,
    /// `ok`, `cooling_down` or `bad_credentials`.
    pub state: &'static str,
    /// Why it cools down (`rate_limit`, `quota`, `unavailable`, `auth`, `parse`).
    pub cooldown: Option<&'static str>,
    /// Until when (RFC 3339).
    pub cooling_until: Option<String>,
    /// The reason, as the provider said it.
    pub reason: Option<String>,
    /// Downloads left in the quota period, when known.
    pub quota_remaining: Option<u32>,
    /// When the quota resets (RFC 3339), when known.
    pub quota_resets_at: Option<String>,
    /// Whether a login session is held.
    pub logged_in: bool,
}

impl WorkerContext {
    /// Every enabled provider's state at `now_ms`, in priority order.
    pub fn provider_health(&self, now_ms: i64) -> Vec<ProviderHealth> {
        self.providers
            .iter()
            .map(|provider| {
                let state = self.provider_states.get(provider.name());
                let until =
                    crate::downloader::cooldown_of(state.as_ref(), provider.as_ref(), now_ms);
                let state = state.unwrap_or_default();
                let kind = until.and(state.cooldown_kind);
                ProviderHealth {
                    name: provider.name().to_owned(),
                    state: match (until, kind) {
                        (None, _) => "ok",
                        (Some(_), Some(crate::store::CooldownKind::Auth)) => "bad_credentials",
                        (Some(_), _) => "cooling_down",
                    },
                    cooldown: kind.map(crate::store::CooldownKind::as_str),
                    cooling_until: until.map(crate::time::format_rfc3339),
                    reason: until.and(state.reason),
                    quota_remaining: state
                        .quota_remaining
                        .filter(|_| state.quota_resets_at_ms.is_none_or(|at| at > now_ms)),
                    quota_resets_at: state
                        .quota_resets_at_ms
                        .filter(|at| *at > now_ms)
                        .map(crate::time::format_rfc3339),
                    logged_in: state.session.is_some_and(|s| s.expires_at_ms > now_ms),
                }
            })
            .collect()
    }
}

/// The provider states every worker reads, shared on the actix thread. Only the JobManager
/// writes it (`ManagerCore::finish` and start-up), so a cooldown has one owner.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry(Rc<RefCell<HashMap<String, ProviderState>>>);

impl ProviderRegistry {
    /// What is known of `provider`.
    pub fn get(&self, provider: &str) -> Option<ProviderState> {
        self.0.borrow().get(provider).cloned()
    }

    /// The end of `provider`'s cooldown, if it is still in force at `now_ms`.
    pub fn cooling_until(&self, provider: &str, now_ms: i64) -> Option<i64> {
        self.0
            .borrow()
            .get(provider)
            .and_then(|state| state.cooling_until(now_ms))
    }

    /// Replaces what is known of `state.provider`.
    pub(crate) fn set(&self, state: ProviderState) {
        self.0.borrow_mut().insert(state.provider.clone(), state);
    }

    /// Records a worker's update over what is known (see [`ProviderState::over`]) and
    /// answers the state now kept.
    pub(crate) fn update(&self, state: ProviderState) -> ProviderState {
        let mut states = self.0.borrow_mut();
        let merged = match states.get(&state.provider) {
            Some(older) => state.over(older),
            None => state,
        };
        states.insert(merged.provider.clone(), merged.clone());
        merged
    }

    /// Every provider's state, by name.
    pub fn all(&self) -> Vec<ProviderState> {
        let mut all: Vec<_> = self.0.borrow().values().cloned().collect();
        all.sort_by(|a, b| a.provider.cmp(&b.provider));
        all
    }
}

/// How a worker ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A subtitle was written next to the video.
    Written {
        /// The file.
        path: PathBuf,
        /// Provider or translation service that produced it.
        producer: String,
        /// Details for the event log (score, release, source subtitle).
        detail: serde_json::Value,
    },
    /// The language already exists next to the video.
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The language is already a text track inside the video (read with ffprobe).
    AlreadyEmbedded {
        /// The track, for people: `subtitle track 2 (subrip, fre)`.
        track: String,
    },
    /// Nothing in the wanted language, but a source to translate from.
    NeedsTranslation {
        /// The source subtitle file.
        source: PathBuf,
        /// Its language.
        from: Language,
    },
    /// Nothing found (yet); wait.
    NothingFound {
        /// Why, for the user.
        reason: String,
        /// When to look again, if a cooldown decides it.
        retry_after: Option<Duration>,
    },
    /// The video is not there (deleted, or its share is not mounted): the JobManager looks
    /// again a few times over a day before it ends the job ("video removed").
    VideoMissing {
        /// The video looked for.
        path: PathBuf,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        error: String,
        /// Whether trying again may help.
        retryable: bool,
    },
}

/// What a worker answers: how its job ended, and what it learnt about providers.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkReport {
    /// How the attempt ended.
    pub outcome: Outcome,
    /// New provider states (a rate limit, an exhausted quota), for the JobManager to
    /// persist and share.
    pub provider_updates: Vec<ProviderState>,
    /// Events recorded with the job's transition after the outcome's own (a media-server
    /// refresh after a write): type and payload.
    pub events: Vec<(&'static str, serde_json::Value)>,
}

impl From<Outcome> for WorkReport {
    /// A report with nothing new about providers.
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            provider_updates: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// Runs a worker's job to its end. Sent once, by the JobManager, with a timeout.
#[derive(Message)]
#[rtype(result = "WorkReport")]
pub struct RunJob;

/// Stops a worker (its job was cancelled, or it missed its deadline).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopWork;

/// One kind of per-job work: the logic, without the actor around it.
pub trait Work: Unpin + 'static {
    /// Runs one attempt of `job`. The future always ends with a report; errors are
    /// outcomes too (`Failed { retryable }`), so the JobManager decides what follows.
    fn run(job: Job, context: Rc<WorkerContext>) -> LocalBoxFuture<WorkReport>;
}

/// The actor shell around one [`Work`]: one per running job, never supervised. It answers
/// its [`RunJob`] with the work's [`WorkReport`] and stops; [`StopWork`] stops it earlier,
/// dropping the work's future.
pub struct Worker<W: Work> {
    job: Job,
    context: Rc<WorkerContext>,
    work: PhantomData<W>,
}

impl<W: Work> Worker<W> {
    /// A worker for `job`.
    pub fn new(job: Job, context: Rc<WorkerContext>) -> Self {
        Self {
            job,
            context,
            work: PhantomData,
        }
    }
}

impl<W: Work> Actor for Worker<W> {
    type Context = Context<Self>;
}

impl<W: Work> Handler<RunJob> for Worker<W> {
    type Result = ResponseActFuture<Self, WorkReport>;

    fn handle(&mut self, _: RunJob, _: &mut Self::Context) -> Self::Result {
        let (job, context) = (self.job.clone(), self.context.clone());
        Box::pin(W::run(job, context).into_actor(self).map(|report, _, ctx| {
            ctx.stop();
            report
        }))
    }
}

impl<W: Work> Handler<StopWork> for Worker<W> {
    type Result = ();

    fn handle(&mut self, _: StopWork, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A started worker, as the JobManager holds it.
pub struct StartedWorker {
    /// Resolves with the report, or a `MailboxError` if the worker vanished or timed out.
    pub run: LocalBoxFuture<Result<WorkReport, MailboxError>>,
    /// Stops the worker.
    pub stop: Recipient<StopWork>,
}

fn start<W: Work>(job: Job, context: Rc<WorkerContext>, timeout: Duration) -> StartedWorker {
    let addr = Worker::<W>::new(job, context).start();
    StartedWorker {
        run: Box::pin(addr.send(RunJob).timeout(timeout)),
        stop: addr.recipient(),
    }
}

/// Which kind of worker a job needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkKind {
    /// A Downloader.
    Download,
    /// A Translator.
    Translate,
}

impl WorkKind {
    /// Every kind, in dispatch order.
    pub const ALL: [Self; 2] = [Self::Download, Self::Translate];

    /// The kind whose queue or worker holds a job in `status`, if any.
    pub fn of_status(status: JobStatus) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| status == kind.queued_status() || status == kind.running_status())
    }

    /// The status of a job waiting for a worker of this kind.
    pub fn queued_status(self) -> JobStatus {
        match self {
            Self::Download => JobStatus::DownloadQueued,
            Self::Translate => JobStatus::TranslateQueued,
        }
    }

    /// The status of a job whose worker of this kind runs.
    pub fn running_status(self) -> JobStatus {
        match self {
            Self::Download => JobStatus::DownloadInProgress,
            Self::Translate => JobStatus::TranslateInProgress,
        }
    }

    /// The event recorded when a worker of this kind starts.
    pub fn started_event(self) -> &'static str {
        match self {
            Self::Download => kind::DOWNLOAD_STARTED,
            Self::Translate => kind::TRANSLATE_STARTED,
        }
    }

    /// The event recorded when a worker of this kind produced a subtitle.
    pub fn produced_event(self) -> &'static str {
        match self {
            Self::Download => kind::READY,
            Self::Translate => kind::TRANSLATED,
        }
    }

    /// The source of the events a worker of this kind causes.
    pub fn event_source(self) -> EventSource {
        match self {
            Self::Download => EventSource::Downloader,
            Self::Translate => EventSource::Translator,
        }
    }

    /// Starts a worker of this kind for `job`; its answer counts as lost after `timeout`.
    pub fn start(self, job: Job, context: Rc<WorkerContext>, timeout: Duration) -> StartedWorker {
        match self {
            Self::Download => start::<Downloader>(job, context, timeout),
            Self::Translate => start::<Translator>(job, context, timeout),
        }
    }
}
