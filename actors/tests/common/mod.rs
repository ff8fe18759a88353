//! What the actor tests share: a temporary library holding one dummy video, a store in a
//! temporary data directory, fault-injecting fakes of the client traits, and bounded polling.
//!
//! The fakes are scripted: each call to `search` (or `translate`) takes the next step of
//! its script, and falls back to a default once the script is used up. Everything here runs
//! on the actix `System` thread, so the fakes use `Rc`/`Cell` like the real workers do.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cuewarden_actors::clients::{
    Candidate, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery, TranslateError,
    TranslationLimits, TranslationRequest, TranslationService,
};
use cuewarden_actors::files::subtitle_path;
use cuewarden_actors::job_manager::{
    JobManager, JobSummary, ManagerSettings, NewRequest, NothingFoundSchedule, RequestSubtitles,
};
use cuewarden_actors::worker::WorkerContext;
use cuewarden_actors::{Event, EventSource, Job, JobId, JobStatus, Language, MediaItem, Priority};
use cuewarden_actors::{Store, job_manager::ManagerStatus};

/// How long a test waits for something that should happen quickly. Generous: the machine
/// may be busy, and waiting jobs are only checked once a second.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often polling looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A subtitle as a provider might send it: BOM, CRLF, an index that does not start at 1.
pub const PROVIDED_SRT: &str = "\u{feff}7\r\n00:00:01,000 --> 00:00:02,500\r\nBonjour\r\n\r\n8\r\n00:00:03,000 --> 00:00:04,000\r\n<i>Salut</i>\r\n";

/// [`PROVIDED_SRT`] as cuewarden writes it: UTF-8 without BOM, `\n`, renumbered.
pub const WRITTEN_SRT: &str = "1\n00:00:01,000 --> 00:00:02,500\nBonjour\n\n2\n00:00:03,000 --> 00:00:04,000\n<i>Salut</i>\n\n";

/// An English subtitle to translate from: three cues, an inline tag and a position tag.
pub const ENGLISH_SRT: &str = "1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,500\n<i>Goodbye</i>\n\n3\n00:01:00,000 --> 00:01:02,000\n{\\an8}Top\n\n";

pub fn lang(code: &str) -> Language {
    Language::parse(code).unwrap()
}

/// A temporary directory with `library/Movie (2019)/Movie (2019).mkv` and `data/`.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub library: PathBuf,
    pub data: PathBuf,
    pub video: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("library");
        let data = dir.path().join("data");
        let folder = library.join("Movie (2019)");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let video = folder.join("Movie (2019).mkv");
        std::fs::write(&video, b"not really a video").unwrap();
        Self {
            dir,
            library,
            data,
            video,
        }
    }

    pub fn open_store(&self) -> Store {
        Store::open(&self.data).unwrap()
    }

    /// Where cuewarden writes the plain subtitle of `language`.
    pub fn sidecar(&self, language: &str) -> PathBuf {
        subtitle_path(&self.video, &lang(language), false, false)
    }

    /// Puts a subtitle file next to the video.
    pub fn add_sidecar(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.video.with_file_name(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Every file name in the video's folder, sorted (temporary files included).
    pub fn folder_listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.video.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A worker context for this library: no provider, no translator.
    pub fn workers(&self) -> WorkerContext {
        WorkerContext::new(cuewarden_actors::Libraries::from_roots([self
            .library
            .clone()]))
    }

    /// Starts a JobManager with the default test settings and `provider` as the only provider.
    pub fn start_with_provider(
        &self,
        store: &Store,
        provider: &Rc<FakeProvider>,
    ) -> Addr<JobManager> {
        let mut workers = self.workers();
        workers.providers = vec![provider.as_provider()];
        start_manager(store, workers, settings())
    }

    /// Like [`Self::start_with_provider`], with `translator` translating from English.
    pub fn start_with_translator(
        &self,
        store: &Store,
        provider: &Rc<FakeProvider>,
        translator: &Rc<FakeTranslator>,
    ) -> Addr<JobManager> {
        let mut workers = self.workers();
        workers.providers = vec![provider.as_provider()];
        workers.translator = Some(translator.as_service());
        workers.translate_from = vec![lang("en")];
        start_manager(store, workers, settings())
    }

    pub fn request(&self, languages: &[&str], auto_translate: bool) -> RequestSubtitles {
        RequestSubtitles(NewRequest {
            media: MediaItem {
                path: self.video.clone(),
                jellyfin_item_id: None,
            },
            languages: languages.iter().map(|l| lang(l)).collect(),
            auto_translate,
            source: EventSource::Api,
            priority: Priority::High,
            existing: Vec::new(),
        })
    }
}

/// Short retry delays, so retries happen at the next wake-up check (once a second).
pub fn settings() -> ManagerSettings {
    ManagerSettings {
        max_downloads: 2,
        max_translations: 1,
        max_attempts: 5,
        retry_min_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_millis(50),
        worker_timeout: Duration::from_secs(20),
        nothing_found: NothingFoundSchedule {
            first: vec![Duration::from_millis(10), Duration::from_millis(20)],
            daily: Duration::from_millis(40),
            ..NothingFoundSchedule::default()
        },
        video_checks: vec![Duration::from_millis(20), Duration::from_millis(60)],
        ..ManagerSettings::default()
    }
}

pub fn start_manager(
    store: &Store,
    workers: WorkerContext,
    settings: ManagerSettings,
) -> Addr<JobManager> {
    JobManager::new(settings, store.clone(), workers).start()
}

/// Sends a request and returns its answer, which must be one job per language.
pub async fn request(manager: &Addr<JobManager>, message: RequestSubtitles) -> Vec<JobSummary> {
    let languages = message.0.languages.len();
    let summaries = manager.send(message).await.unwrap().unwrap();
    assert_eq!(summaries.len(), languages);
    summaries
}

/// Polls `check` until it answers `Some`, for at most [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for {what}"
        );
        actix_rt::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the stored job satisfies `predicate`, and returns it.
pub async fn job_where(
    store: &Store,
    id: JobId,
    what: &str,
    predicate: impl Fn(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let job = store.job(id).unwrap();
        if let Some(job) = job.as_ref().filter(|j| predicate(j)) {
            return job.clone();
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting for job {id} to be {what}; last seen: {job:#?}"
        );
        actix_rt::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until the stored job has `status`, and returns it.
/// Requests French for the sandbox video and waits until `provider` is searching for it.
pub async fn start_searching(
    manager: &Addr<JobManager>,
    store: &Store,
    sandbox: &Sandbox,
    provider: &FakeProvider,
) -> JobId {
    let id = request(manager, sandbox.request(&["fr"], false)).await[0].id;
    job_in(store, id, JobStatus::DownloadInProgress).await;
    eventually("the provider to be searching", || {
        (provider.searches.get() == 1).then_some(())
    })
    .await;
    id
}

pub async fn job_in(store: &Store, id: JobId, status: JobStatus) -> Job {
    job_where(store, id, status.as_str(), |j| j.status == status).await
}

/// The job's events, oldest first.
pub fn events(store: &Store, id: JobId) -> Vec<Event> {
    let mut events = store.job_events(id).unwrap();
    events.reverse();
    events
}

/// The job's event types, oldest first.
pub fn kinds(store: &Store, id: JobId) -> Vec<String> {
    events(store, id).into_iter().map(|e| e.kind).collect()
}

pub fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

/// Asserts that `expected` appears in `kinds` in this order (other events may sit between).
pub fn assert_in_order(kinds: &[String], expected: &[&str]) {
    let mut rest = kinds.iter();
    for wanted in expected {
        assert!(
            rest.any(|k| k == wanted),
            "{wanted} missing or out of order in {kinds:?}"
        );
    }
}

/// The global sequence numbers of a job's events strictly increase.
pub fn assert_sequenced(events: &[Event]) {
    assert!(
        events.windows(2).all(|w| w[0].seq < w[1].seq),
        "{:?}",
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
}

pub async fn manager_status(
    manager: &Addr<JobManager>,
) -> cuewarden_actors::job_manager::StatusReport {
    manager.send(ManagerStatus).await.unwrap()
}

/// Sets a flag when dropped: shows that a worker's future was abandoned, not leaked.
pub struct DropFlag(pub Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// One scripted answer of [`FakeProvider::search`].
#[derive(Clone)]
pub enum Search {
    /// One candidate in the language asked for, score 90.
    Offer,
    /// No candidate.
    Nothing,
    /// This error.
    Fail(ProviderError),
    /// Panic while searching (a bug in an adapter).
    Panic,
    /// Never answer (a provider that hangs past every timeout).
    Hang,
}

/// A scripted subtitle provider that counts its calls.
pub struct FakeProvider {
    name: String,
    script: RefCell<VecDeque<Search>>,
    default: Search,
    download: RefCell<Result<Vec<u8>, ProviderError>>,
    pub searches: Cell<usize>,
    pub downloads: Cell<usize>,
    /// Set once a hanging search's future is dropped.
    pub hang_dropped: Rc<Cell<bool>>,
}

impl FakeProvider {
    /// A provider that answers `script` in turn, then `default`; downloads [`PROVIDED_SRT`].
    pub fn new(script: impl IntoIterator<Item = Search>, default: Search) -> Rc<Self> {
        Rc::new(Self {
            name: "fake".to_owned(),
            script: RefCell::new(script.into_iter().collect()),
            default,
            download: RefCell::new(Ok(PROVIDED_SRT.as_bytes().to_vec())),
            searches: Cell::new(0),
            downloads: Cell::new(0),
            hang_dropped: Rc::new(Cell::new(false)),
        })
    }

    /// Makes every download answer `bytes`.
    pub fn downloading(self: Rc<Self>, bytes: &[u8]) -> Rc<Self> {
        *self.download.borrow_mut() = Ok(bytes.to_vec());
        self
    }

    pub fn as_provider(self: &Rc<Self>) -> Rc<dyn SubtitleProvider> {
        self.clone()
    }
}

impl SubtitleProvider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn search(
        &self,
        query: &SubtitleQuery,
    ) -> LocalBoxFuture<Result<Vec<Candidate>, ProviderError>> {
        self.searches.set(self.searches.get() + 1);
        let step = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| self.default.clone());
        let candidate = Candidate {
            provider: self.name.clone(),
            id: format!("candidate-{}", self.searches.get()),
            language: query.language.clone(),
            score: 90,
            hearing_impaired: false,
            forced: false,
            release: "Movie.2019.1080p.BluRay".to_owned(),
            meta: Default::default(),
        };
        match step {
            Search::Offer => Box::pin(async move { Ok(vec![candidate]) }),
            Search::Nothing => Box::pin(async { Ok(Vec::new()) }),
            Search::Fail(err) => Box::pin(async move { Err(err) }),
            Search::Panic => Box::pin(async { panic!("the fake provider panicked (on purpose)") }),
            Search::Hang => {
                let flag = DropFlag(self.hang_dropped.clone());
                Box::pin(async move {
                    let _flag = flag;
                    std::future::pending::<()>().await;
                    Ok(Vec::new())
                })
            }
        }
    }

    fn download(&self, _: &Candidate) -> LocalBoxFuture<Result<Vec<u8>, ProviderError>> {
        self.downloads.set(self.downloads.get() + 1);
        let answer = self.download.borrow().clone();
        Box::pin(async move { answer })
    }
}

/// One scripted answer of [`FakeTranslator::translate`].
#[derive(Clone)]
pub enum Translate {
    /// Prefix every text with `[lang] `.
    Prefix,
    /// Answer one text fewer than sent.
    DropOne,
    /// This error.
    Fail(TranslateError),
}

/// A scripted translation service that records the batches it receives.
pub struct FakeTranslator {
    max_batch: usize,
    script: RefCell<VecDeque<Translate>>,
    pub batches: RefCell<Vec<Vec<String>>>,
}

impl FakeTranslator {
    pub fn new(max_batch: usize, script: impl IntoIterator<Item = Translate>) -> Rc<Self> {
        Rc::new(Self {
            max_batch,
            script: RefCell::new(script.into_iter().collect()),
            batches: RefCell::new(Vec::new()),
        })
    }

    pub fn as_service(self: &Rc<Self>) -> Rc<dyn TranslationService> {
        self.clone()
    }
}

impl TranslationService for FakeTranslator {
    fn name(&self) -> &str {
        "fake-translator"
    }

    fn limits(&self) -> TranslationLimits {
        TranslationLimits {
            max_texts: self.max_batch,
            max_bytes: usize::MAX,
            context: 0,
        }
    }

    fn translate(
        &self,
        request: TranslationRequest,
    ) -> LocalBoxFuture<Result<Vec<String>, TranslateError>> {
        let TranslationRequest { texts, to, .. } = request;
        self.batches.borrow_mut().push(texts.clone());
        let step = self
            .script
            .borrow_mut()
            .pop_front()
            .unwrap_or(Translate::Prefix);
        Box::pin(async move {
            match step {
                Translate::Prefix => Ok(texts.iter().map(|t| format!("[{to}] {t}")).collect()),
                Translate::DropOne => Ok(texts[1..].to_vec()),
                Translate::Fail(err) => Err(err),
            }
        })
    }
}

/// A job record as the store would hold it, for tests that prepare a store by hand.
pub fn job_record(video: &Path, language: &str, status: JobStatus, now_ms: i64) -> Job {
    let mut job = Job::pending(
        video.to_owned(),
        lang(language),
        EventSource::Watcher,
        now_ms,
    );
    job.status = status;
    job.auto_translate = true;
    job.attempts = 1;
    job
}
