//! The Jellyfin WebSocket source: `LibraryChanged` → the added and updated movies and
//! episodes → the intake.
//!
//! A socket opened with an API key never receives `LibraryChanged` (Jellyfin sends it only
//! to user sessions), so the listener logs in with `[jellyfin] username/password`
//! (`POST /Users/AuthenticateByName`) and keeps the token and a stable device id in the
//! store's settings table: they are reused across reconnects and restarts, and a new login
//! happens only when Jellyfin answers 401 to the token (a new login with the same device id
//! logs the old token out). It then opens `/socket` with the token, sends `KeepAlive` every
//! [`KEEPALIVE_INTERVAL`] from the moment the socket opens (and at half the timeout a
//! `ForceKeepAlive` names), and treats [`DEAD_AFTER`] of silence as a dead socket.
//!
//! `LibraryChanged` ids (added and updated) are looked up in one batched `/Items?Ids=` call;
//! movies and episodes with a file go to the intake as paths, with the languages their
//! embedded subtitle tracks already have (those get `skipped` jobs). An item whose file is
//! not readable yet is looked up again on [`NOT_READY_RETRIES`]. After every (re)connect,
//! items saved while the socket was down are caught up with `MinDateLastSaved` from the
//! newest item seen (kept in the store). Without credentials, or with `websocket = false`,
//! the same catch-up runs every `poll_interval_secs` instead.
//!
//! The actor is `Supervised`: a session that fails ends its future, the actor shows
//! `reconnecting` with the next attempt, waits an exponential, jittered delay
//! ([`Reconnect`]) and stops itself, and its Supervisor starts it again (the struct and its
//! state survive, the futures do not). [`StopListening`] ends it for good.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backon::{BackoffBuilder, ExponentialBuilder};
use cuewarden_actors::job_manager::ManagerError;
use cuewarden_actors::library::PathError;
use cuewarden_actors::store::Change;
use cuewarden_actors::time::now_ms;
use cuewarden_actors::{EventSource, Language};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use tracing::{debug, info, warn};

use super::{Detection, Intake, IntakeError, Source, SourceHandle, SourceInfo, SourceState};
use super::{SourceStatus, Target};
use crate::clients::jellyfin::{Device, JellyfinClient, JellyfinError, JellyfinItem};
use crate::config::{JellyfinSettings, Secret};

/// How often a `KeepAlive` goes out, from the moment the socket opens (Jellyfin's own
/// client sends one every half of the 60 s timeout).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A socket that sent no frame for this long is dead: Jellyfin answers every `KeepAlive`,
/// so a live one is never silent past one interval.
pub const DEAD_AFTER: Duration = Duration::from_secs(75);
/// A connection that stayed up this long resets the reconnect backoff.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How long the TCP connect, TLS and upgrade may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// When an item whose file is not readable yet (or not probed yet) is looked up again: the
/// n-th delay after the n-th look; after the last one it is refused on the status.
pub const NOT_READY_RETRIES: [Duration; 4] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
];
/// Ids per `/Items?Ids=` call (a `LibraryChanged` after a big scan can name thousands).
pub const IDS_PER_LOOKUP: usize = 200;
/// Items per page of a catch-up.
pub const CATCH_UP_PAGE: usize = 500;
/// Items the listener remembers having handed over (its guard against the `ItemsUpdated`
/// its own subtitle writes cause); forgotten all at once past this.
pub const REMEMBERED_ITEMS: usize = 20_000;
/// The fields asked for every item.
pub const FIELDS: &str = "Path,ProviderIds,MediaStreams,DateCreated";

/// Settings key of the device id (a JSON string).
pub const DEVICE_ID_KEY: &str = "jellyfin.device_id";
/// Settings key of the user session ([`StoredSession`]).
pub const SESSION_KEY: &str = "jellyfin.session";
/// Settings key of the catch-up mark: the newest `DateCreated` seen (a JSON string).
pub const CAUGHT_UP_KEY: &str = "jellyfin.caught_up_to";

/// The listener's settings, from `[jellyfin]`; the timing knobs default to the constants
/// above (tests shorten [`not_ready_retries`](Self::not_ready_retries)).
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// `username` and `password`, when both are set.
    pub credentials: Option<(String, Secret)>,
    /// `websocket`.
    pub websocket: bool,
    /// `reconnect_delay_secs`.
    pub reconnect_delay: Duration,
    /// `max_reconnect_delay_secs`.
    pub max_reconnect_delay: Duration,
    /// `poll_interval_secs`.
    pub poll_interval: Duration,
    /// [`KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Duration,
    /// [`DEAD_AFTER`].
    pub dead_after: Duration,
    /// [`HEALTHY_AFTER`].
    pub healthy_after: Duration,
    /// [`NOT_READY_RETRIES`].
    pub not_ready_retries: Vec<Duration>,
}

impl SocketSettings {
    /// From `[jellyfin]`.
    pub fn with_config(jellyfin: &JellyfinSettings) -> Self {
        let credentials = match (&jellyfin.password, jellyfin.username.is_empty()) {
            (Some(password), false) => Some((jellyfin.username.clone(), password.clone())),
            _ => None,
        };
        Self {
            credentials,
            websocket: jellyfin.websocket,
            reconnect_delay: jellyfin.reconnect_delay,
            max_reconnect_delay: jellyfin.max_reconnect_delay,
            poll_interval: jellyfin.poll_interval,
            keepalive_interval: KEEPALIVE_INTERVAL,
            dead_after: DEAD_AFTER,
            healthy_after: HEALTHY_AFTER,
            not_ready_retries: NOT_READY_RETRIES.to_vec(),
        }
    }
}

/// The user session as kept in the store: reused while the server and user match.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// The base URL it was made for.
    pub server: String,
    /// The user.
    pub username: String,
    /// The access token.
    pub token: String,
    /// The user's id.
    #[serde(default)]
    pub user_id: String,
}

/// The source, registered in `app::Components::from_settings` when `[jellyfin]` is set.
pub struct JellyfinSocket {
    settings: SocketSettings,
}

impl JellyfinSocket {
    /// The source with these settings.
    pub fn new(settings: SocketSettings) -> Self {
        Self { settings }
    }
}

/// Description on `/health/sources`.
const DESCRIPTION: &str = "Jellyfin WebSocket (LibraryChanged, as a user session), with a \
catch-up after every reconnect; polls /Items every poll_interval_secs without the socket";

impl Source for JellyfinSocket {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: EventSource::JellyfinWs,
            enabled: true,
            description: DESCRIPTION,
        }
    }

    fn start(self: Box<Self>, intake: Intake, status: SourceStatus) -> SourceHandle {
        let Some(client) = intake.jellyfin().cloned() else {
            status.set(SourceState::Failing {
                error: "[jellyfin] is not configured".to_owned(),
            });
            return SourceHandle::finished();
        };
        let reconnect = Reconnect::new(
            self.settings.reconnect_delay,
            self.settings.max_reconnect_delay,
            self.settings.healthy_after,
        );
        let core = Rc::new(Core {
            settings: self.settings,
            intake,
            status,
            client,
            tracker: RefCell::new(Tracker::default()),
            device: RefCell::new(None),
            token: RefCell::new(None),
        });
        let listener = JellyfinListener {
            core,
            reconnect,
            is_stopping: false,
        };
        let address = Supervisor::start(move |_| listener);
        SourceHandle::new(move || async move {
            // Keep the address until the listener has stopped: the Supervisor restarts
            // only while one is alive, and the flag stops it from reconnecting meanwhile.
            let _ = address.send(StopListening).await;
            drop(address);
        })
    }
}

/// Ends the listener for good (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopListening;

/// The actor: one session (or the poll loop) at a time.
pub struct JellyfinListener {
    core: Rc<Core>,
    reconnect: Reconnect,
    is_stopping: bool,
}

impl Actor for JellyfinListener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.is_stopping {
            return;
        }
        let core = self.core.clone();
        match (&core.settings.credentials, core.settings.websocket) {
            (_, false) => {
                info!(
                    every_secs = core.settings.poll_interval.as_secs(),
                    "jellyfin: websocket = false; polling /Items for new movies and episodes"
                );
                core.status.note(format!(
                    "websocket = false: polling /Items every {} s",
                    core.settings.poll_interval.as_secs()
                ));
                ctx.spawn(poll_forever(core).into_actor(self));
            }
            (None, true) => {
                let why = format!(
                    "the Jellyfin socket needs a user session: set [jellyfin] username and \
                     password (an API key never receives LibraryChanged); polling /Items \
                     every {} s instead",
                    core.settings.poll_interval.as_secs()
                );
                warn!("{why}");
                core.status.note(why);
                ctx.spawn(poll_forever(core).into_actor(self));
            }
            (Some(_), true) => {
                let started = Instant::now();
                self.reconnect.attempt(started);
                ctx.spawn(
                    run_session(core)
                        .into_actor(self)
                        .map(move |ended, act, ctx| act.session_ended(ended, ctx)),
                );
            }
        }
    }
}

impl Supervised for JellyfinListener {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Connection state lives in the dropped session future; what survives (device,
        // token, catch-up mark, pending retries) is meant to.
        debug!("jellyfin listener restarting");
    }
}

impl JellyfinListener {
    fn session_ended(&mut self, ended: SessionEnd, ctx: &mut Context<Self>) {
        if self.is_stopping {
            return;
        }
        let now = Instant::now();
        if let Some(connected) = ended.connected_at {
            self.reconnect.connected(connected);
        }
        let mut delay = self.reconnect.next_delay(now);
        let status = &self.core.status;
        status.error(ended.error.to_string());
        if let SessionError::Jellyfin(JellyfinError::LoginRefused { .. }) = &ended.error {
            // A wrong name or password does not mend by itself: say so, and try again only
            // at the longest delay (the password may be changed in Jellyfin meanwhile).
            delay = self.core.settings.max_reconnect_delay;
            status.set(SourceState::Failing {
                error: format!(
                    "{}; check [jellyfin] username and password (next try in {} s)",
                    ended.error,
                    delay.as_secs()
                ),
            });
            warn!(error = %ended.error, retry_in_secs = delay.as_secs(), "jellyfin login refused");
            ctx.run_later(delay, |_, ctx| ctx.stop());
            return;
        }
        status.reconnecting(now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        warn!(
            error = %ended.error,
            retry_in_ms = delay.as_millis() as u64,
            "jellyfin socket lost; reconnecting"
        );
        ctx.run_later(delay, |_, ctx| ctx.stop());
    }
}

impl Handler<StopListening> for JellyfinListener {
    type Result = ();

    fn handle(&mut self, _: StopListening, ctx: &mut Self::Context) {
        self.is_stopping = true;
        self.core.status.set(SourceState::Disabled);
        // Drops the session future (closing the socket) and any pending reconnect.
        ctx.stop();
    }
}

/// The reconnect policy: exponential backoff with jitter from the first delay to the
/// longest (`backon`), reset by a connection that stayed up [`HEALTHY_AFTER`].
#[derive(Debug)]
pub struct Reconnect {
    builder: ExponentialBuilder,
    max: Duration,
    healthy_after: Duration,
    delays: backon::ExponentialBackoff,
    connected_at: Option<Instant>,
}

impl Reconnect {
    /// A policy from `first` to `max`.
    pub fn new(first: Duration, max: Duration, healthy_after: Duration) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(first)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Self {
            builder,
            max,
            healthy_after,
            delays: builder.build(),
            connected_at: None,
        }
    }

    /// A connection attempt starts.
    pub fn attempt(&mut self, _now: Instant) {
        self.connected_at = None;
    }

    /// The socket opened at `at`.
    pub fn connected(&mut self, at: Instant) {
        self.connected_at = Some(at);
    }

    /// The delay before the next attempt, the session having ended at `now`: the first
    /// delay again after a healthy connection, else the next step (at most `max`; jitter
    /// adds up to one step, clamped to `max`).
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        if self
            .connected_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.healthy_after)
        {
            self.delays = self.builder.build();
        }
        self.connected_at = None;
        self.delays.next().unwrap_or(self.max).min(self.max)
    }
}

/// What the session and poll futures share with the actor (single-threaded: `RefCell`s
/// are borrowed briefly, never across an await).
struct Core {
    settings: SocketSettings,
    intake: Intake,
    status: SourceStatus,
    client: JellyfinClient,
    tracker: RefCell<Tracker>,
    device: RefCell<Option<Device>>,
    token: RefCell<Option<Secret>>,
}

/// What the listener remembers across sessions (and actor restarts).
#[derive(Debug, Default)]
struct Tracker {
    /// The catch-up mark, once loaded or set.
    caught_up_to: Option<String>,
    /// Items handed over in this run, by id.
    handed_over: HashSet<String>,
    /// Items to look up again: id → (attempts made, when next).
    not_ready: HashMap<String, (usize, Instant)>,
}

/// Why a session ended, and whether it had connected.
struct SessionEnd {
    error: SessionError,
    connected_at: Option<Instant>,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Jellyfin(#[from] JellyfinError),
    #[error("cannot open the Jellyfin socket: {0}")]
    Connect(String),
    #[error("jellyfin refused the socket upgrade (HTTP {0})")]
    Upgrade(u16),
    #[error("the Jellyfin socket closed: {0}")]
    Closed(String),
    #[error("the Jellyfin socket sent nothing for {0} s")]
    Silent(u64),
    #[error("the store failed: {0}")]
    Store(String),
    #[error("the job manager is not taking requests")]
    ManagerGone,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One session: log in if needed, connect, catch up, then listen until something fails.
async fn run_session(core: Rc<Core>) -> SessionEnd {
    let mut connected_at = None;
    let error = match session(&core, &mut connected_at).await {
        Ok(never) => match never {},
        Err(error) => error,
    };
    SessionEnd {
        error,
        connected_at,
    }
}

enum Never {}

async fn session(
    core: &Rc<Core>,
    connected_at: &mut Option<Instant>,
) -> Result<Never, SessionError> {
    let device = device(core).await?;
    let mut socket = match connect(core, &device).await {
        Err(SessionError::Upgrade(status)) if status == 401 || status == 403 => {
            // Jellyfin answers a bad token on the upgrade with 403 as often as 401: ask
            // REST whether the token is still good, and log in again only on its 401.
            let token = token(core, &device).await?;
            match core.client.check_token(&token, &device).await {
                Err(JellyfinError::Unauthorized(_)) => {
                    info!("jellyfin: the stored session token was refused; logging in again");
                    core.token.borrow_mut().take();
                    login(core, &device).await?;
                    connect(core, &device).await?
                }
                Err(other) => return Err(other.into()),
                Ok(()) => return Err(SessionError::Upgrade(status)),
            }
        }
        other => other?,
    };
    let opened = Instant::now();
    *connected_at = Some(opened);
    core.status.set(SourceState::Connected);
    info!(url = %core.client.base(), "jellyfin socket connected");
    // Items saved while the socket was down.
    catch_up(core).await?;

    let mut keepalive = tokio::time::interval(core.settings.keepalive_interval);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_frame = Instant::now();
    loop {
        let silent_until = last_frame + core.settings.dead_after;
        let retry_at = next_retry(core);
        tokio::select! {
            frame = socket.next() => {
                let frame = match frame {
                    None => return Err(SessionError::Closed("end of stream".to_owned())),
                    Some(Err(err)) => return Err(SessionError::Closed(err.to_string())),
                    Some(Ok(frame)) => frame,
                };
                last_frame = Instant::now();
                core.status.message();
                match frame {
                    Message::Text(text) => {
                        if let Some(interval) = handle_text(core, &mut socket, text.as_str()).await? {
                            keepalive = tokio::time::interval_at(
                                tokio::time::Instant::now() + interval,
                                interval,
                            );
                        }
                    }
                    Message::Close(close) => {
                        let reason = close.map_or_else(
                            || "closed by Jellyfin".to_owned(),
                            |c| format!("closed by Jellyfin ({} {})", u16::from(c.code), c.reason),
                        );
                        return Err(SessionError::Closed(reason));
                    }
                    // Pings are answered by tungstenite; binary frames are not Jellyfin's.
                    _ => {}
                }
            }
            _ = keepalive.tick() => send_keepalive(&mut socket).await?,
            _ = tokio::time::sleep_until(silent_until.into()) => {
                return Err(SessionError::Silent(core.settings.dead_after.as_secs()));
            }
            _ = sleep_until(retry_at) => retry_not_ready(core).await?,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

const KEEPALIVE: &str = r#"{"MessageType":"KeepAlive"}"#;

async fn send_keepalive(socket: &mut Socket) -> Result<(), SessionError> {
    socket
        .send(Message::text(KEEPALIVE))
        .await
        .map_err(|err| SessionError::Closed(err.to_string()))
}

/// A server message, as far as cuewarden reads it.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "MessageType")]
    message_type: String,
    #[serde(rename = "Data", default)]
    data: serde_json::Value,
}

/// `LibraryChanged`'s `Data` (`LibraryUpdateInfo`), the parts read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LibraryUpdate {
    #[serde(default)]
    items_added: Vec<String>,
    #[serde(default)]
    items_updated: Vec<String>,
}

/// What a text frame asks of the session.
#[derive(Debug, PartialEq)]
enum Frame {
    /// `ForceKeepAlive` with its timeout (s): answer now, then every half of it.
    ForceKeepAlive(u64),
    /// `LibraryChanged`: these added ids, these updated ids.
    LibraryChanged(Vec<String>, Vec<String>),
    /// Anything else (`KeepAlive` answers, sessions, tasks…).
    Other(String),
}

/// Reads a text frame; an error says why it is not a Jellyfin message.
fn parse_frame(text: &str) -> Result<Frame, String> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|err| err.to_string())?;
    match envelope.message_type.as_str() {
        "ForceKeepAlive" => {
            let timeout = envelope
                .data
                .as_u64()
                .or_else(|| envelope.data.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(60);
            Ok(Frame::ForceKeepAlive(timeout))
        }
        "LibraryChanged" => {
            let update: LibraryUpdate =
                serde_json::from_value(envelope.data).map_err(|err| err.to_string())?;
            Ok(Frame::LibraryChanged(
                update.items_added,
                update.items_updated,
            ))
        }
        other => Ok(Frame::Other(other.to_owned())),
    }
}

/// Handles one text frame; returns a new keepalive interval when Jellyfin asked for one.
async fn handle_text(
    core: &Rc<Core>,
    socket: &mut Socket,
    text: &str,
) -> Result<Option<Duration>, SessionError> {
    match parse_frame(text) {
        Err(error) => {
            warn!(%error, frame = %truncate(text, 200), "jellyfin sent a frame that is not a message; skipped");
            Ok(None)
        }
        Ok(Frame::ForceKeepAlive(timeout)) => {
            send_keepalive(socket).await?;
            let half = Duration::from_secs(timeout.max(2)) / 2;
            Ok(Some(half.min(core.settings.keepalive_interval)))
        }
        Ok(Frame::LibraryChanged(added, updated)) => {
            debug!(
                added = added.len(),
                updated = updated.len(),
                "jellyfin LibraryChanged"
            );
            let updated: Vec<String> = {
                // Updates of items already handed over are mostly our own subtitle
                // writes being noticed: not asked for again.
                let tracker = core.tracker.borrow();
                updated
                    .into_iter()
                    .filter(|id| !tracker.handed_over.contains(&normalize_id(id)))
                    .collect()
            };
            let mut ids: Vec<String> = added
                .iter()
                .chain(&updated)
                .map(|id| normalize_id(id))
                .collect();
            let mut seen = HashSet::new();
            ids.retain(|id| seen.insert(id.clone()));
            look_up_and_submit(core, &ids).await?;
            Ok(None)
        }
        Ok(Frame::Other(kind)) => {
            debug!(message_type = %kind, "jellyfin message ignored");
            Ok(None)
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// Item ids in Jellyfin's `N` form (32 lower-case hex digits), whatever form they came in.
pub fn normalize_id(id: &str) -> String {
    id.chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The languages of an item's embedded subtitle tracks (text or image, not external, not
/// forced-only), as cuewarden names them; tracks without a known language are left out.
pub fn embedded_languages(item: &JellyfinItem) -> Vec<Language> {
    let mut languages: Vec<Language> = Vec::new();
    for stream in &item.media_streams {
        if stream.stream_type.as_deref() != Some("Subtitle")
            || stream.is_external
            || stream.is_forced
        {
            continue;
        }
        if let Some(language) = stream.language.as_deref().and_then(Language::from_token)
            && !languages.contains(&language)
        {
            languages.push(language);
        }
    }
    languages
}

/// Looks `ids` up in batched `/Items?Ids=` calls and submits the movies and episodes.
async fn look_up_and_submit(core: &Rc<Core>, ids: &[String]) -> Result<(), SessionError> {
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        if chunk.is_empty() {
            continue;
        }
        let joined = chunk.join(",");
        let page = match core
            .client
            .items(&[("Ids", joined.as_str()), ("Fields", FIELDS)])
            .await
        {
            Ok(page) => page,
            // 400/404: none of them is an item any more (removed in the meantime).
            Err(JellyfinError::UnknownItem(_)) => continue,
            Err(other) => return Err(other.into()),
        };
        submit_items(core, page.items).await?;
    }
    Ok(())
}

/// Hands movies and episodes to the intake, all at once (their commits share a group
/// commit); schedules the not-ready ones again; advances the catch-up mark.
async fn submit_items(core: &Rc<Core>, items: Vec<JellyfinItem>) -> Result<(), SessionError> {
    let now = Instant::now();
    let mut newest: Option<String> = None;
    let mut pending = Vec::new();
    for item in items {
        if let Some(created) = item.date_created.as_deref() {
            newest = Some(newer(newest.take(), created));
        }
        if !item.is_video_file() {
            continue;
        }
        let id = normalize_id(&item.id);
        let Some(path) = item.path.clone() else {
            continue;
        };
        if item.media_streams.is_empty() && not_ready(core, &id, now) {
            // Not probed yet: its embedded tracks are not known; look again later.
            continue;
        }
        let mut detection = Detection::new(
            Target::JellyfinItemAt {
                id: id.clone(),
                path: PathBuf::from(&path),
            },
            EventSource::JellyfinWs,
        );
        detection.existing = embedded_languages(&item);
        pending.push((id, path, detection));
    }
    let results = core
        .intake
        .submit_all(pending.iter().map(|(_, _, d)| d.clone()).collect())
        .await;
    for ((id, path, _), result) in pending.into_iter().zip(results) {
        match result {
            Ok(submitted) => {
                core.status.detected(1);
                debug!(item = %id, path = %submitted.path.display(), jobs = submitted.jobs.len(), "jellyfin item handed over");
                let mut tracker = core.tracker.borrow_mut();
                tracker.not_ready.remove(&id);
                if tracker.handed_over.len() >= REMEMBERED_ITEMS {
                    tracker.handed_over.clear();
                }
                tracker.handed_over.insert(id);
            }
            Err(IntakeError::Path(PathError::NotFound(_) | PathError::Unreadable { .. }))
                if not_ready(core, &id, now) =>
            {
                debug!(item = %id, %path, "jellyfin item not readable yet; looking again later");
            }
            Err(IntakeError::Manager(ManagerError::ShuttingDown) | IntakeError::Mailbox(_)) => {
                return Err(SessionError::ManagerGone);
            }
            Err(err) => {
                core.tracker.borrow_mut().not_ready.remove(&id);
                warn!(item = %id, %path, error = %err, "jellyfin item refused");
                core.status.refused(path, err.to_string());
            }
        }
    }
    if let Some(newest) = newest {
        advance_mark(core, &newest).await?;
    }
    Ok(())
}

/// Schedules `id` for another look if it has attempts left; `false` when it has none.
fn not_ready(core: &Rc<Core>, id: &str, now: Instant) -> bool {
    let mut tracker = core.tracker.borrow_mut();
    let (attempts, _) = tracker.not_ready.get(id).copied().unwrap_or((0, now));
    match core.settings.not_ready_retries.get(attempts) {
        Some(delay) => {
            tracker
                .not_ready
                .insert(id.to_owned(), (attempts + 1, now + *delay));
            true
        }
        None => {
            tracker.not_ready.remove(id);
            false
        }
    }
}

fn next_retry(core: &Rc<Core>) -> Option<Instant> {
    core.tracker
        .borrow()
        .not_ready
        .values()
        .map(|(_, at)| *at)
        .min()
}

/// Looks the due not-ready items up again.
async fn retry_not_ready(core: &Rc<Core>) -> Result<(), SessionError> {
    let now = Instant::now();
    let due: Vec<String> = core
        .tracker
        .borrow()
        .not_ready
        .iter()
        .filter(|(_, (_, at))| *at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    // Give them a far due time meanwhile, so a slow lookup does not loop on them; the
    // submit reschedules or forgets each.
    {
        let mut tracker = core.tracker.borrow_mut();
        for id in &due {
            if let Some((_, at)) = tracker.not_ready.get_mut(id) {
                *at = now + Duration::from_secs(3600);
            }
        }
    }
    let before: HashMap<String, usize> = {
        let tracker = core.tracker.borrow();
        due.iter()
            .filter_map(|id| tracker.not_ready.get(id).map(|(n, _)| (id.clone(), *n)))
            .collect()
    };
    look_up_and_submit(core, &due).await?;
    // An id the lookup no longer returned (removed from Jellyfin) is forgotten.
    let mut tracker = core.tracker.borrow_mut();
    for (id, attempts) in before {
        if tracker
            .not_ready
            .get(&id)
            .is_some_and(|(n, at)| *n == attempts && *at > now + Duration::from_secs(3000))
        {
            tracker.not_ready.remove(&id);
        }
    }
    Ok(())
}

/// The later of two Jellyfin dates (RFC 3339; an unreadable one loses).
fn newer(current: Option<String>, candidate: &str) -> String {
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    match current {
        Some(current) if parse(&current) >= parse(candidate) => current,
        _ => candidate.to_owned(),
    }
}

/// Moves the catch-up mark forward to `newest` (kept in the store).
async fn advance_mark(core: &Rc<Core>, newest: &str) -> Result<(), SessionError> {
    let moved = {
        let mut tracker = core.tracker.borrow_mut();
        let next = newer(tracker.caught_up_to.clone(), newest);
        if tracker.caught_up_to.as_deref() == Some(next.as_str()) {
            None
        } else {
            tracker.caught_up_to = Some(next.clone());
            Some(next)
        }
    };
    if let Some(mark) = moved {
        put_setting(core, CAUGHT_UP_KEY, serde_json::json!(mark)).await?;
    }
    Ok(())
}

/// Catches up on the movies and episodes saved since the mark (all pages); on the very
/// first run there is no mark: it is set to now, and the library sync covers the past.
async fn catch_up(core: &Rc<Core>) -> Result<(), SessionError> {
    let mark = core.tracker.borrow().caught_up_to.clone();
    let mark = match mark {
        Some(mark) => mark,
        None => match read_setting::<String>(core, CAUGHT_UP_KEY).await? {
            Some(mark) => {
                core.tracker.borrow_mut().caught_up_to = Some(mark.clone());
                mark
            }
            None => {
                // Nothing to catch up on yet, but Jellyfin must answer: an unreachable
                // server shows as failing now, not at the first item.
                core.client
                    .items(&[
                        ("Recursive", "true"),
                        ("IncludeItemTypes", "Movie,Episode"),
                        ("Limit", "1"),
                        ("EnableTotalRecordCount", "false"),
                    ])
                    .await?;
                let now = jiff::Timestamp::now().to_string();
                info!(from = %now, "jellyfin: first start; catching up from now on");
                advance_mark(core, &now).await?;
                return Ok(());
            }
        },
    };
    let mut start = 0usize;
    loop {
        let start_text = start.to_string();
        let limit = CATCH_UP_PAGE.to_string();
        let page = core
            .client
            .items(&[
                ("Recursive", "true"),
                ("IncludeItemTypes", "Movie,Episode"),
                ("Fields", FIELDS),
                ("MinDateLastSaved", mark.as_str()),
                ("SortBy", "DateCreated"),
                ("SortOrder", "Ascending"),
                ("StartIndex", start_text.as_str()),
                ("Limit", limit.as_str()),
            ])
            .await?;
        let count = page.items.len();
        let fresh: Vec<JellyfinItem> = {
            let tracker = core.tracker.borrow();
            page.items
                .into_iter()
                .filter(|item| !tracker.handed_over.contains(&normalize_id(&item.id)))
                .collect()
        };
        if !fresh.is_empty() {
            info!(items = fresh.len(), since = %mark, "jellyfin: catching up");
        }
        submit_items(core, fresh).await?;
        if count < CATCH_UP_PAGE {
            return Ok(());
        }
        start += count;
    }
}

/// Without the socket: the catch-up, every `poll_interval`; errors are shown and retried
/// at the next tick.
async fn poll_forever(core: Rc<Core>) {
    let mut tick = tokio::time::interval(core.settings.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match catch_up(&core).await {
                    Ok(()) => {
                        core.status.message();
                        core.status.set(SourceState::Running);
                    }
                    Err(SessionError::ManagerGone) => return,
                    Err(err) => {
                        warn!(error = %err, "jellyfin poll failed; trying again at the next interval");
                        core.status.error(err.to_string());
                        core.status.set(SourceState::Failing { error: err.to_string() });
                    }
                }
            }
            _ = sleep_until(next_retry(&core)) => {
                if let Err(err) = retry_not_ready(&core).await {
                    warn!(error = %err, "jellyfin lookup failed");
                    core.status.error(err.to_string());
                }
            }
        }
    }
}

/// The device id: from the store, or new (and kept).
async fn device(core: &Rc<Core>) -> Result<Device, SessionError> {
    if let Some(device) = core.device.borrow().clone() {
        return Ok(device);
    }
    let id = match read_setting::<String>(core, DEVICE_ID_KEY).await? {
        Some(id) if !id.is_empty() => id,
        _ => {
            let id = format!("cuewarden-{}", uuid::Uuid::new_v4().simple());
            put_setting(core, DEVICE_ID_KEY, serde_json::json!(id)).await?;
            id
        }
    };
    let device = Device { id };
    *core.device.borrow_mut() = Some(device.clone());
    Ok(device)
}

/// The session token: in hand, else from the store (when made for this server and user),
/// else a new login.
async fn token(core: &Rc<Core>, device: &Device) -> Result<Secret, SessionError> {
    if let Some(token) = core.token.borrow().clone() {
        return Ok(token);
    }
    let user = credentials(core)?.0;
    let server = core.client.base().to_string();
    if let Some(stored) = read_setting::<StoredSession>(core, SESSION_KEY).await?
        && stored.server == server
        && stored.username == user
        && !stored.token.is_empty()
    {
        let token = Secret::from(stored.token);
        *core.token.borrow_mut() = Some(token.clone());
        return Ok(token);
    }
    login(core, device).await
}

fn credentials(core: &Rc<Core>) -> Result<(String, Secret), SessionError> {
    core.settings.credentials.clone().ok_or_else(|| {
        SessionError::Connect("no [jellyfin] username/password for a user session".to_owned())
    })
}

/// Logs in and keeps the new token (in hand and in the store).
async fn login(core: &Rc<Core>, device: &Device) -> Result<Secret, SessionError> {
    let (user, password) = credentials(core)?;
    let session = core.client.authenticate(&user, &password, device).await?;
    info!(user = %user, device = %device.id, "jellyfin: logged in");
    let stored = StoredSession {
        server: core.client.base().to_string(),
        username: user,
        token: session.token.expose().to_owned(),
        user_id: session.user_id,
    };
    let value = serde_json::to_value(&stored).map_err(|e| SessionError::Store(e.to_string()))?;
    put_setting(core, SESSION_KEY, value).await?;
    *core.token.borrow_mut() = Some(session.token.clone());
    Ok(session.token)
}

/// Opens `/socket` with the token in the `Authorization` header.
async fn connect(core: &Rc<Core>, device: &Device) -> Result<Socket, SessionError> {
    let token = token(core, device).await?;
    let url = core.client.socket_url(device)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|err| SessionError::Connect(err.to_string()))?;
    let header = tungstenite::http::HeaderValue::from_str(&device.authorization(Some(&token)))
        .map_err(|err| SessionError::Connect(err.to_string()))?;
    request.headers_mut().insert("Authorization", header);
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(SessionError::Connect(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(tungstenite::Error::Http(response))) => {
            Err(SessionError::Upgrade(response.status().as_u16()))
        }
        Ok(Err(err)) => Err(SessionError::Connect(err.to_string())),
        Ok(Ok((socket, _))) => Ok(socket),
    }
}

async fn read_setting<T: serde::de::DeserializeOwned + Send + 'static>(
    core: &Rc<Core>,
    key: &'static str,
) -> Result<Option<T>, SessionError> {
    let Some(store) = core.intake.store().cloned() else {
        return Ok(None);
    };
    match tokio::task::spawn_blocking(move || store.state_as::<T>(key)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            // A value that cannot be read is as good as none: it is written again.
            warn!(key, error = %cuewarden_actors::store::error_chain(&err), "cannot read a jellyfin setting; starting afresh");
            Ok(None)
        }
        Err(err) => Err(SessionError::Store(err.to_string())),
    }
}

async fn put_setting(
    core: &Rc<Core>,
    key: &str,
    value: serde_json::Value,
) -> Result<(), SessionError> {
    let Some(store) = core.intake.store() else {
        return Ok(());
    };
    store
        .submit(vec![Change::PutState {
            key: key.to_owned(),
            value,
        }])
        .await
        .map(|_| ())
        .map_err(|err| SessionError::Store(cuewarden_actors::store::error_chain(&err)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clients::jellyfin::ItemsPage;

    #[test]
    fn the_backoff_grows_from_the_first_delay_to_the_longest_and_resets_after_a_healthy_connection()
    {
        let first = Duration::from_secs(2);
        let max = Duration::from_secs(20);
        let mut policy = Reconnect::new(first, max, Duration::from_secs(30));
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..8).map(|_| policy.next_delay(t0)).collect();
        for (n, delay) in delays.iter().enumerate() {
            let step = first * 2u32.pow(n as u32);
            assert!(*delay >= step.min(max), "{n}: {delay:?}");
            assert!(*delay <= (step * 2).min(max), "{n}: {delay:?}");
        }
        assert_eq!(delays[7], max, "capped");
        // A short connection does not reset it…
        policy.connected(t0);
        assert_eq!(policy.next_delay(t0 + Duration::from_secs(5)), max);
        // …a healthy one does.
        policy.connected(t0);
        let after = policy.next_delay(t0 + Duration::from_secs(31));
        assert!(after >= first && after < first * 2, "{after:?}");
    }

    #[test]
    fn frames_are_read_by_message_type_and_bad_ones_are_errors() {
        let force = include_str!("../../tests/fixtures/jellyfin_ws_forcekeepalive.json");
        assert_eq!(parse_frame(force).unwrap(), Frame::ForceKeepAlive(60));
        let changed = include_str!("../../tests/fixtures/jellyfin_ws_librarychanged.json");
        let Frame::LibraryChanged(added, updated) = parse_frame(changed).unwrap() else {
            panic!("not LibraryChanged");
        };
        assert_eq!(
            added,
            [
                "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b",
                "c2a7e9f14b3d4e8fa6b1d0c9e8f7a6b5"
            ]
        );
        assert_eq!(updated.len(), 2);
        let keepalive = include_str!("../../tests/fixtures/jellyfin_ws_keepalive.json");
        assert_eq!(
            parse_frame(keepalive).unwrap(),
            Frame::Other("KeepAlive".to_owned())
        );
        assert!(parse_frame("{not json").is_err());
        assert!(parse_frame(r#"{"Data":1}"#).is_err(), "no MessageType");
        assert!(
            parse_frame(r#"{"MessageType":"LibraryChanged","Data":{"ItemsAdded":7}}"#).is_err()
        );
        assert_eq!(
            parse_frame(r#"{"MessageType":"ScheduledTaskEnded","Data":{}}"#).unwrap(),
            Frame::Other("ScheduledTaskEnded".to_owned())
        );
    }

    #[test]
    fn embedded_languages_are_internal_unforced_subtitle_tracks() {
        let page: ItemsPage = serde_json::from_str(include_str!(
            "../../tests/fixtures/jellyfin_items_page.json"
        ))
        .unwrap();
        // The movie: Spanish embedded, English only as external files.
        let movie = &page.items[0];
        assert_eq!(embedded_languages(movie), [Language::parse("es").unwrap()]);
        // An image (PGS) track counts.
        assert_eq!(
            embedded_languages(&page.items[1]),
            [Language::parse("en").unwrap()]
        );
        assert!(embedded_languages(&page.items[2]).is_empty());
        let mut forced = page.items[1].clone();
        forced.media_streams[2].is_forced = true;
        assert!(embedded_languages(&forced).is_empty());
    }

    #[test]
    fn item_ids_are_normalized_to_the_n_form() {
        assert_eq!(
            normalize_id("6213B704-A0D9-5429-3110-F4D561B0F614"),
            "6213b704a0d954293110f4d561b0f614"
        );
    }

    #[test]
    fn the_newer_date_wins() {
        let a = "2025-05-06T12:10:00.0000000Z";
        let b = "2025-05-06T12:11:00.0000000Z";
        assert_eq!(newer(Some(a.to_owned()), b), b);
        assert_eq!(newer(Some(b.to_owned()), a), b);
        assert_eq!(newer(None, a), a);
    }
}
