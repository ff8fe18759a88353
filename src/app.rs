//! Start-up and shutdown: the one owner of the daemon's life cycle.
//!
//! Start order: data dir and API key → store (resumes nothing by itself) → JobManager
//! (loads and resumes unfinished jobs) → HTTP server → `READY=1`. Shutdown order, on the
//! future passed in (SIGTERM/SIGINT in production): stop the HTTP server (sources), tell
//! the JobManager to stop and let running jobs finish within the grace period, close the
//! store (which commits everything queued), `STOPPING=1`, return.

use std::net::TcpListener;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use cuewarden_actors::clients::{MediaServer, SubtitleProvider, TranslationService};
use cuewarden_actors::downloader::embedded;
use cuewarden_actors::job_manager::{JobManager, Shutdown, open_store};
use cuewarden_actors::walk::Walker;
use cuewarden_actors::worker::{RefreshRetry, WorkerContext};
use cuewarden_actors::{Libraries, Library};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::api::{self, AppState};
use crate::clients::jellyfin::{JellyfinClient, JellyfinRefresher};
use crate::config::{Secret, Settings};
use crate::schedule::{Scheduler, tasks};
use crate::sources::jellyfin_ws::{JellyfinSocket, SocketSettings};
use crate::sources::library_sync::{LibrarySync, SyncTrigger};
use crate::sources::watcher::FileWatcher;
use crate::sources::{
    Intake, IntakeRules, SERVED_SOURCES, Source, SourceBoard, SourceHandle, SourceInfo,
    SourceState, SourceStatus,
};

/// File in `data_dir` holding the generated API key.
pub const API_KEY_FILE: &str = "api_key";

/// How long the HTTP server waits for open connections when it stops.
pub const HTTP_SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// HTTP worker threads: enough for a NAS; the work happens in actors.
pub const HTTP_WORKERS: usize = 2;
/// Blocking threads per HTTP worker, for store reads.
pub const HTTP_BLOCKING_THREADS: usize = 4;

/// The configured API key, or the one kept in `data_dir`, or a new one (kept, logged once).
pub fn api_key(settings: &Settings) -> anyhow::Result<Secret> {
    if let Some(key) = &settings.server.api_key {
        return Ok(key.clone());
    }
    let path = settings.data_dir.join(API_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(Secret::from(key.trim().to_owned())),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
    let key = uuid::Uuid::new_v4().simple().to_string();
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    // Logged once, like Sonarr/Radarr, so the owner can find it in the journal.
    info!(path = %path.display(), api_key = %key, "generated an API key");
    Ok(Secret::from(key))
}

/// Writes a file only its owner can read, atomically: a crash or a full disk never leaves
/// an empty or partial key behind (an empty one is replaced on the next start anyway).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("tmp");
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Tells systemd about our state when run as `Type=notify` (no-op otherwise).
pub fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = std::os::unix::net::UnixDatagram::unbound().and_then(|sender| {
        let bytes = socket.as_encoded_bytes();
        // `@name` is a socket in the abstract namespace (sd_notify(3)).
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sender.send_to_addr(state.as_bytes(), &address)
        } else {
            sender.send_to(state.as_bytes(), &socket)
        }
    });
    if let Err(err) = result {
        warn!(error = %err, "cannot notify systemd");
    }
}

/// The configured libraries, their roots canonicalised (blocking).
pub fn libraries_of(settings: &Settings) -> Libraries {
    Libraries::new(
        settings
            .libraries
            .iter()
            .map(|library| Library {
                root: library.path.clone(),
                languages: library.languages.clone(),
            })
            .collect(),
    )
}

/// How often the library sync runs without `[jellyfin]` (its
/// `fallback_sync_interval_hours` default).
pub const DEFAULT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The built parts of the daemon, made from the settings by [`Components::from_settings`]:
/// what [`run`] wires together. Adding a provider, a translator, a source or a sink is one
/// file in its folder plus one line here.
pub struct Components {
    /// The libraries, canonicalised once.
    pub libraries: Libraries,
    /// Enabled subtitle providers, in priority order.
    pub providers: Vec<Rc<dyn SubtitleProvider>>,
    /// The translation service, if one is enabled.
    pub translator: Option<Rc<dyn TranslationService>>,
    /// Jellyfin's REST client, when `[jellyfin]` is configured.
    pub jellyfin: Option<JellyfinClient>,
    /// The media server refreshed after a write (Jellyfin, unless `[notify.jellyfin]
    /// refresh = false`).
    pub media_server: Option<Rc<dyn MediaServer>>,
    /// How a failed refresh is tried again.
    pub refresh_retry: RefreshRetry,
    /// The sources to start (the API is always there).
    pub sources: Vec<Box<dyn Source>>,
    /// Asks the library sync to run now (for the scheduler and the API).
    pub library_sync: Option<SyncTrigger>,
    /// Runs the upgrade pass (for the scheduler): `upgrades.run().await` → counts.
    pub upgrades: crate::upgrades::UpgradeTrigger,
    /// The upgrade requests, served once the JobManager runs.
    pub upgrade_requests: Option<crate::upgrades::UpgradeRequests>,
    /// The enabled `[notify.*]` targets (README, "Notifications").
    pub notify_targets: Vec<cuewarden_actors::notify::NotifyTarget>,
}

impl Components {
    /// Builds every component the settings enable (blocking: canonicalises the library
    /// roots). Must run inside the actix `System`, where the components live.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let http = crate::clients::http_client().context("cannot build the HTTP client")?;
        let libraries = libraries_of(settings);
        let jellyfin = settings.jellyfin.as_ref().map(|j| {
            JellyfinClient::new(http.clone(), j)
                .with_paths(settings.path_mappings.clone(), libraries.clone())
        });
        // The providers, in the configured priority order: each is one line there.
        let providers = crate::clients::subtitle_providers(&settings.providers, jellyfin.as_ref())?;
        let refresh = settings.notify.jellyfin.as_ref().is_none_or(|j| j.refresh);
        let media_server = jellyfin
            .as_ref()
            .filter(|_| refresh)
            .map(|client| Rc::new(JellyfinRefresher::new(client.clone())) as Rc<dyn MediaServer>);
        // Each source is one line here.
        let sync_interval = settings
            .jellyfin
            .as_ref()
            .map_or(DEFAULT_SYNC_INTERVAL, |j| j.fallback_sync_interval);
        // With `[schedule] library_sync` set, the scheduler plans the syncs; the source
        // still syncs on the first start.
        let scheduled = settings
            .schedule
            .task(crate::schedule::tasks::LIBRARY_SYNC)
            .is_some_and(|t| t.cron.is_some());
        let sync = LibrarySync::new(
            settings.library_sync && !libraries.is_empty(),
            if scheduled {
                std::time::Duration::ZERO
            } else {
                sync_interval
            },
            Walker::new(libraries.clone(), settings.languages.wanted.clone()),
            jellyfin.clone(),
        );
        let library_sync = Some(sync.trigger());
        let (upgrades, upgrade_requests) = crate::upgrades::channel();
        let mut sources: Vec<Box<dyn Source>> = vec![
            Box::new(FileWatcher::new(
                settings.watcher.enabled && !libraries.is_empty(),
                settings.watcher.stable,
            )),
            Box::new(sync),
        ];
        if let Some(jellyfin) = &settings.jellyfin {
            sources.push(Box::new(JellyfinSocket::new(SocketSettings::with_config(
                jellyfin,
            ))));
        }
        // The translation service: one line.
        let translator = settings
            .translator
            .as_ref()
            .map(crate::clients::translators::translator)
            .transpose()
            .context("cannot build the translation client")?;
        Ok(Self {
            libraries,
            providers,
            translator,
            jellyfin,
            media_server,
            refresh_retry: RefreshRetry::default(),
            sources,
            library_sync,
            upgrades,
            upgrade_requests: Some(upgrade_requests),
            notify_targets: crate::notify::targets(&settings.notify, &http),
        })
    }
}

/// How a run of the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `shutdown` resolved: the process ends.
    Stopped,
    /// The running store was found damaged: the daemon stopped as on SIGTERM, and the
    /// process starts its own binary again ([`RESTARTED_FOR_DAMAGE_VAR`]), whose start-up
    /// check moves the file aside and restores the newest snapshot.
    RestartForDamage,
}

/// Set (to the Unix time in seconds) in the environment of a daemon that restarted itself
/// because its store was found damaged while it ran.
pub const RESTARTED_FOR_DAMAGE_VAR: &str = "CUEWARDEN_RESTARTED_FOR_DAMAGE";

/// Damage found again this soon after a restart for damage, in a store the start-up check
/// found good, is not restarted for again (that would loop): the daemon stays up degraded.
pub const DAMAGE_RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Runs the daemon with the components the settings enable until `shutdown` resolves, or
/// until the running store is found damaged ([`Ending::RestartForDamage`]). Must run inside
/// an actix `System`.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Ending> {
    // The start-up check of the store is most of the start: it runs while the HTTP clients
    // (their TLS roots) and the other components are built.
    let opening = start_opening(&settings)?;
    let components = Components::from_settings(&settings)?;
    serve(settings, components, opening, listener, shutdown).await
}

/// The store being opened and checked on a blocking thread while the rest starts.
type Opening = tokio::task::JoinHandle<
    Result<
        (
            cuewarden_actors::Store,
            Option<cuewarden_actors::job_manager::StartJobs>,
        ),
        cuewarden_actors::StoreError,
    >,
>;

/// Creates `data_dir` and starts opening the store in it (the check decodes every
/// unfinished job; the JobManager takes them over).
fn start_opening(settings: &Settings) -> anyhow::Result<Opening> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data_dir {}", settings.data_dir.display()))?;
    let data_dir = settings.data_dir.clone();
    Ok(tokio::task::spawn_blocking(move || open_store(&data_dir)))
}

/// Runs the daemon with the given components until `shutdown` resolves. Must run inside an
/// actix `System`.
pub async fn run_with(
    settings: Settings,
    components: Components,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let opening = start_opening(&settings)?;
    serve(settings, components, opening, listener, shutdown)
        .await
        .map(|_| ())
}

/// How long ago this process restarted itself for a damaged store, if it did.
fn restarted_for_damage_ago() -> Option<std::time::Duration> {
    let at: u64 = std::env::var(RESTARTED_FOR_DAMAGE_VAR).ok()?.parse().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(now.saturating_sub(std::time::Duration::from_secs(at)))
}

/// Waits for `shutdown`, or for the store to be found damaged: then the daemon restarts
/// itself, unless it did so for damage moments ago and the store checked good (the start-up
/// check does not see this damage, so restarting again would loop): it then stays up,
/// degraded, refusing writes, until `shutdown`.
async fn until_stop_or_damage(
    shutdown: impl Future<Output = ()>,
    store: &cuewarden_actors::Store,
    data_dir: &Path,
) -> Ending {
    let mut shutdown = std::pin::pin!(shutdown);
    let cause = tokio::select! {
        () = &mut shutdown => return Ending::Stopped,
        cause = store.damaged() => cause,
    };
    let since = cuewarden_actors::store::list_snapshots(data_dir)
        .pop()
        .map_or_else(
            || "there is no snapshot: every job and event".to_owned(),
            |s| {
                format!(
                    "everything since the newest snapshot that checks good (the newest was \
                     taken at {})",
                    s.taken_at
                )
            },
        );
    let checked_good = *store.start_state() == cuewarden_actors::store::StartState::Good;
    if let Some(ago) = restarted_for_damage_ago().filter(|ago| *ago < DAMAGE_RESTART_WINDOW)
        && checked_good
    {
        tracing::error!(
            error = %cause,
            restarted_secs_ago = ago.as_secs(),
            "the store was found damaged again soon after a restart for damage, and the start-up \
             check had found it good: not restarting again (that would loop). Staying up \
             degraded: every write is refused, reads serve what can be read. Stop the daemon, \
             then `cuewarden store check` and `cuewarden store restore PATH` (a snapshot)"
        );
        store.stay_damaged();
        shutdown.await;
        return Ending::Stopped;
    }
    tracing::error!(
        error = %cause,
        "the store was found damaged while running: stopping as on SIGTERM (running jobs get \
         their grace; their progress since the last commit is lost) and restarting in place; \
         the start then moves the file aside and restores the newest snapshot ({since} is lost)"
    );
    Ending::RestartForDamage
}

/// [`run_with`] once the store is being opened.
async fn serve(
    settings: Settings,
    components: Components,
    opening: Opening,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Ending> {
    let ffprobe = tokio::task::spawn_blocking(embedded::find_ffprobe);
    let api_key = api_key(&settings)?;
    if !settings.not_yet_active.is_empty() {
        warn!(
            sections = settings.not_yet_active.join(", "),
            "configured, but this version does not use these yet"
        );
    }
    for root in components.libraries.unresolved() {
        warn!(path = %root.display(), "library folder does not exist (yet)");
    }
    let sync_enabled = settings.library_sync && !components.libraries.is_empty();
    let (store, mut start_jobs) = opening
        .await?
        .with_context(|| format!("while opening the store in {}", settings.data_dir.display()))?;
    info!(path = %store.path().display(), "store open");

    let mut workers = WorkerContext::new(components.libraries.clone());
    workers.providers = components.providers;
    workers.translator = components.translator;
    workers.media_server = components.media_server;
    workers.refresh_retry = components.refresh_retry;
    workers.translate_from = settings.languages.translate_from.clone();
    workers.min_score = settings.languages.min_score;
    workers.hearing_impaired = settings.languages.hearing_impaired;
    workers.upgrades = settings.languages.upgrades;
    workers.ffprobe = ffprobe.await?;
    let ffprobe = workers.ffprobe.clone();
    workers.ffmpeg = tokio::task::spawn_blocking(move || {
        cuewarden_actors::translator::source::find_ffmpeg(ffprobe.as_deref())
    })
    .await?;
    workers.store = Some(store.clone());
    workers.translate_for = settings.jobs.worker_timeout.mul_f64(0.8);
    workers.translation_budget = settings
        .translator
        .as_ref()
        .and_then(|t| t.monthly_character_budget);
    let notify_jobs = start_jobs.as_mut().map(|start| start.take_notify_jobs());
    let manager = JobManager::new(settings.jobs.clone(), store.clone(), workers)
        .resuming(start_jobs)
        .start();
    // The outbox's reader: one notify job per target and entry.
    let notifier = cuewarden_actors::notify::start(
        store.clone(),
        components.notify_targets,
        settings.notify.limits.clone(),
        notify_jobs,
    );
    let upgrades_served = components.upgrade_requests.is_some();
    if let Some(requests) = components.upgrade_requests {
        requests.serve(manager.clone());
    }
    let rules = IntakeRules {
        libraries: components.libraries,
        path_mappings: settings.path_mappings.clone(),
        wanted: settings.languages.wanted.clone(),
        translate_by_default: !settings.languages.translate_from.is_empty(),
    };
    let intake = Intake::new(manager.clone(), rules, components.jellyfin).with_store(store.clone());
    let mut listed: Vec<(SourceInfo, SourceStatus)> = SERVED_SOURCES
        .iter()
        .map(|info| (info.clone(), SourceStatus::new(SourceState::Running)))
        .collect();
    let mut running: Vec<(SourceInfo, SourceHandle)> = Vec::new();
    for source in components.sources {
        let info = source.info();
        let status = SourceStatus::new(if info.enabled {
            SourceState::Starting
        } else {
            SourceState::Disabled
        });
        listed.push((info.clone(), status.clone()));
        if info.enabled {
            info!(source = ?info.name, "source started");
            running.push((info, source.start(intake.clone(), status)));
        }
    }

    // The scheduled tasks: each is one registration.
    let mut scheduler = Scheduler::new(&settings.schedule, store.clone());
    if let Some(trigger) = components.library_sync.clone().filter(|_| sync_enabled) {
        scheduler.register(
            tasks::LIBRARY_SYNC,
            tasks::library_sync(trigger, store.clone()),
        );
    }
    scheduler.register(tasks::WANTED_RETRY, tasks::wanted_retry(manager.clone()));
    if upgrades_served {
        scheduler.register(tasks::UPGRADE, tasks::upgrade(components.upgrades.clone()));
    }
    scheduler.register(
        tasks::CLEANUP,
        tasks::cleanup(
            store.clone(),
            settings.retention,
            settings.translation_cache_kept(),
        ),
    );
    let (schedule, scheduler_task) = scheduler.start();

    let (shutdown_sender, shutdown_receiver) = watch::channel(false);
    let max_body = settings.server.max_body_bytes;
    let grace = settings.server.shutdown_grace;
    let data_dir = settings.data_dir.clone();
    let state = AppState {
        manager: manager.clone(),
        store: store.clone(),
        api_key: Arc::new(api_key),
        intake,
        sources: SourceBoard::new(listed),
        streams: api::StreamSlots::new(settings.server.max_event_streams),
        settings: Arc::new(settings),
        shutdown: shutdown_receiver,
        schedule,
    };
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(api::guard))
            .app_data(web::Data::new(state.clone()))
            .configure(api::configure(max_body))
    })
    .workers(HTTP_WORKERS)
    // Store reads run on blocking threads; a few per worker are plenty, and every extra
    // thread costs memory (malloc arenas) long after a burst.
    .worker_max_blocking_threads(HTTP_BLOCKING_THREADS)
    // A client that closes its side is gone: its event stream (and its slot under
    // `server.max_event_streams`) ends now, not at the next keep-alive write.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(HTTP_SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .context("cannot serve HTTP")?
    .run();
    let server_handle = server.handle();
    let server_task = actix_web::rt::spawn(server);
    info!(%address, "listening");
    if restarted_for_damage_ago().is_some() {
        sd_notify("READY=1\nSTATUS=restarted in place for a store found damaged; see /health");
    } else {
        sd_notify("READY=1");
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let mut ending = until_stop_or_damage(shutdown.as_mut(), &store, &data_dir).await;
    info!("shutting down");
    // A restart in place is no stop for systemd (STOPPING=1 would have it kill the process
    // once `TimeoutStopSec` passed): it only sees the status change.
    if ending == Ending::RestartForDamage {
        sd_notify("STATUS=restarting in place: the store was found damaged");
    } else {
        sd_notify("STOPPING=1");
    }
    let _ = shutdown_sender.send(true);
    scheduler_task.stop().await;
    info!("scheduler stopped");
    for (info, handle) in running {
        handle.stop().await;
        info!(source = ?info.name, "source stopped");
    }
    server_handle.stop(true).await;
    let _ = server_task.await;
    match manager.send(Shutdown { grace }).await {
        Ok(unfinished) if unfinished.is_empty() => info!("job manager stopped"),
        Ok(unfinished) => warn!(
            jobs = unfinished.len(),
            grace_secs = grace.as_secs(),
            "jobs still running at the end of the grace period; they resume on next start"
        ),
        Err(err) => warn!(error = %err, "job manager did not answer the shutdown"),
    }
    notifier.stop().await;
    info!("notifier stopped");
    let closing = store.clone();
    tokio::task::spawn_blocking(move || closing.close()).await?;
    info!("store closed");
    // A stop asked for while the daemon stopped to restart for a damaged store (systemd's
    // SIGTERM) is a stop: the signal is pending in `shutdown` by now.
    if ending == Ending::RestartForDamage {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        if shutdown.as_mut().poll(&mut context).is_ready() {
            info!("asked to stop while stopping to restart for the damaged store: not restarting");
            ending = Ending::Stopped;
        }
    }
    Ok(ending)
}
