//! `GET /events/stream`: the global event log as server-sent events, resumable.
//!
//! A client that sends `Last-Event-ID: N` (or `?last_event_id=N`) first gets every event
//! after N from the store (`0`: the whole log), then live events as they commit. An N beyond
//! the newest event means "from now". Without it, the stream starts with the
//! [`RECENT_EVENTS`] most recent events, so a new client sees what just happened without
//! replaying years of history. The subscription is taken before the backlog is read, so
//! nothing falls between the two; duplicates are skipped by sequence number. A subscriber
//! that falls too far behind re-reads from the store.
//!
//! What a stream may cost is bounded, whatever its client does:
//! - the backlog is read in pages of [`PAGE_EVENTS`] events; each page (or each burst of
//!   live events) becomes one chunk of frames, and at most [`BUFFERED_CHUNKS`] chunks wait
//!   for a client, so a stream holds a few hundred KB at most, never the log;
//! - a client that does not read for [`STALL_TIMEOUT`] once its buffer is full is dropped
//!   (its slot and buffers are released; the connection closes);
//! - at most `server.max_event_streams` streams are open at once ([`StreamSlots`]); one more
//!   gets a JSON 503 `too_many_streams` with `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use cuewarden_actors::Event;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, warn};

use super::auth::Authorized;
use super::jobs::event_view;
use super::{ApiError, AppState};

/// How often an idle stream sends a comment so proxies keep it open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Events read from the store per backlog page, and most frames in one chunk.
pub const PAGE_EVENTS: usize = 64;
/// Chunks waiting for a slow client before the stream stops producing.
pub const BUFFERED_CHUNKS: usize = 4;
/// How long a stream waits for a client whose buffer is full before dropping it.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How many past events a stream without `Last-Event-ID` starts with.
pub const RECENT_EVENTS: u64 = 100;
/// What the 503 for one stream too many suggests, in seconds.
const RETRY_AFTER_SECS: u32 = 10;

/// The open event streams, counted against `server.max_event_streams`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One open stream's place; released when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<AtomicUsize>,
}

impl StreamSlots {
    /// Room for `max` streams at once.
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or `None` when `max` streams are open.
    pub fn try_acquire(&self) -> Option<StreamSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()
            .map(|_| StreamSlot {
                open: self.open.clone(),
            })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One SSE frame for an event, appended to `out`.
fn push_frame(out: &mut String, event: &Event) {
    use std::fmt::Write as _;
    let data = event_view(event);
    let _ = write!(
        out,
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.seq, event.kind, data
    );
}

/// Query of `GET /events/stream`: the resume point and the API key, nothing else.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    last_event_id: Option<String>,
    #[serde(rename = "apikey")]
    _key: Option<serde::de::IgnoredAny>,
}

/// The resume point: the `Last-Event-ID` header, else `?last_event_id=`.
fn last_event_id(request: &HttpRequest, query: Option<String>) -> Result<Option<u64>, ApiError> {
    let header = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match header.or(query) {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "Last-Event-ID: {raw:?} is not an event sequence number"
            ))
        }),
    }
}

/// Why a stream stopped early.
enum Stop {
    /// The client left, or the daemon stops.
    Gone,
    /// The client's buffer stayed full for [`STALL_TIMEOUT`].
    Stalled,
    /// The store could not be read.
    Store(String),
}

/// Hands one chunk to the client, waiting at most [`STALL_TIMEOUT`] for room.
async fn deliver(sender: &mpsc::Sender<web::Bytes>, chunk: String) -> Result<(), Stop> {
    match sender
        .send_timeout(web::Bytes::from(chunk), STALL_TIMEOUT)
        .await
    {
        Ok(()) => Ok(()),
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Stop::Stalled),
        Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Stop::Gone),
    }
}

/// Sends the store's events after `after`, page by page; returns the last seq sent.
async fn send_backlog(
    state: &AppState,
    mut after: u64,
    sender: &mpsc::Sender<web::Bytes>,
) -> Result<u64, Stop> {
    loop {
        let store = state.store.clone();
        let page = web::block(move || store.events_after(after, PAGE_EVENTS))
            .await
            .map_err(|err| Stop::Store(err.to_string()))?
            .map_err(|err| Stop::Store(cuewarden_actors::store::error_chain(&err)))?;
        let full = page.len() == PAGE_EVENTS;
        let mut chunk = String::new();
        for event in &page {
            after = event.seq;
            push_frame(&mut chunk, event);
        }
        // The decoded page goes before the wait: only its frames stay while the client reads.
        drop(page);
        if !chunk.is_empty() {
            deliver(sender, chunk).await?;
        }
        if !full {
            return Ok(after);
        }
    }
}

async fn pump(
    state: AppState,
    after: u64,
    sender: mpsc::Sender<web::Bytes>,
    slot: StreamSlot,
) -> Stop {
    let mut live = state.store.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut last = match send_backlog(&state, after, &sender).await {
        Ok(last) => last,
        Err(stop) => return stop,
    };
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE_INTERVAL);
    let stop = loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) => {
                    // A burst of live events becomes one chunk, like a backlog page.
                    let mut chunk = String::new();
                    let mut next = Some(event);
                    let mut taken = 0;
                    while let Some(event) = next.take() {
                        if event.seq > last {
                            last = event.seq;
                            push_frame(&mut chunk, &event);
                        }
                        taken += 1;
                        if taken < PAGE_EVENTS {
                            next = live.try_recv().ok();
                        }
                    }
                    if !chunk.is_empty()
                        && let Err(stop) = deliver(&sender, chunk).await
                    {
                        break stop;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    live = state.store.subscribe();
                    match send_backlog(&state, last, &sender).await {
                        Ok(seq) => last = seq,
                        Err(stop) => break stop,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break Stop::Gone,
            },
            _ = keep_alive.tick() => {
                if let Err(stop) = deliver(&sender, ": keep-alive\n\n".to_owned()).await {
                    break stop;
                }
            }
            () = sender.closed() => break Stop::Gone,
            _ = shutdown.changed() => break Stop::Gone,
        }
    };
    drop(slot);
    stop
}

/// `GET /events/stream`
pub async fn event_stream(
    _: Authorized,
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let requested = last_event_id(&request, query.into_inner().last_event_id)?;
    let Some(slot) = state.streams.try_acquire() else {
        let max = state.settings.server.max_event_streams;
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{max} event streams are open, as many as server.max_event_streams allows; try again later"
            ),
        )
        .error_response();
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(RETRY_AFTER_SECS),
        );
        return Ok(response);
    };
    let store = state.store.clone();
    let newest = web::block(move || store.last_event_seq()).await??;
    let after = match requested {
        // Beyond the newest event (a client of an older store): from now.
        Some(seq) => seq.min(newest),
        None => newest.saturating_sub(RECENT_EVENTS),
    };
    let (sender, receiver) = mpsc::channel::<web::Bytes>(BUFFERED_CHUNKS);
    let pumped = state.get_ref().clone();
    actix_web::rt::spawn(async move {
        match pump(pumped, after, sender, slot).await {
            Stop::Gone => {}
            Stop::Stalled => debug!(
                stall_secs = STALL_TIMEOUT.as_secs(),
                "event stream dropped: its client stopped reading"
            ),
            Stop::Store(error) => warn!(%error, "event stream ended: cannot read the store"),
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), receiver))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
