//! `GET /events/stream`: the global event log as server-sent events, resumable.
//!
//! A client that sends `Last-Event-ID: N` (or `?last_event_id=N`) first gets every event
//! after N from the store (`0`: the whole log), then live events as they commit. Without
//! it, the stream starts with the [`RECENT_EVENTS`] most recent events, so a new client
//! sees what just happened without replaying years of history. The subscription is taken
//! before the backlog is read, so nothing falls between the two; duplicates are skipped
//! by sequence number. A subscriber that falls too far behind re-reads from the store.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::{broadcast, mpsc};

use super::auth::Authorized;
use super::jobs::event_view;
use super::{ApiError, AppState};

/// How often an idle stream sends a comment so proxies keep it open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Events read from the store per backlog page.
const BACKLOG_PAGE: usize = 500;
/// How many past events a stream without `Last-Event-ID` starts with.
pub const RECENT_EVENTS: u64 = 100;

/// One SSE frame for an event.
fn sse_frame(event: &cuewarden_actors::Event) -> String {
    let data = event_view(event).to_string();
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event.seq, event.kind, data
    )
}

fn last_event_id(request: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let header = request
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = web::Query::<Vec<(String, String)>>::from_query(request.query_string())
        .ok()
        .and_then(|q| {
            q.iter()
                .find(|(k, _)| k == "last_event_id")
                .map(|(_, v)| v.clone())
        });
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

/// Sends the store's events after `after` to `sender`; returns the last seq sent.
async fn send_backlog(
    state: &AppState,
    mut after: u64,
    sender: &mpsc::Sender<String>,
) -> Result<u64, ()> {
    loop {
        let store = state.store.clone();
        let page = web::block(move || store.events_after(after, BACKLOG_PAGE))
            .await
            .map_err(drop)?
            .map_err(drop)?;
        let full = page.len() == BACKLOG_PAGE;
        for event in page {
            after = event.seq;
            sender.send(sse_frame(&event)).await.map_err(drop)?;
        }
        if !full {
            return Ok(after);
        }
    }
}

async fn pump(state: AppState, after: u64, sender: mpsc::Sender<String>) {
    let mut live = state.store.subscribe();
    let mut shutdown = state.shutdown.clone();
    let Ok(mut last) = send_backlog(&state, after, &sender).await else {
        return;
    };
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE_INTERVAL);
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.seq > last => {
                    last = event.seq;
                    if sender.send(sse_frame(&event)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    live = state.store.subscribe();
                    match send_backlog(&state, last, &sender).await {
                        Ok(seq) => last = seq,
                        Err(()) => return,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => {
                if sender.send(": keep-alive\n\n".to_owned()).await.is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// `GET /events/stream`
pub async fn event_stream(
    _: Authorized,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let after = match last_event_id(&request)? {
        Some(seq) => seq,
        None => {
            let store = state.store.clone();
            let last = web::block(move || store.last_event_seq()).await??;
            last.saturating_sub(RECENT_EVENTS)
        }
    };
    let (sender, receiver) = mpsc::channel::<String>(64);
    actix_web::rt::spawn(pump(state.get_ref().clone(), after, sender));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| {
            (
                Ok::<_, std::convert::Infallible>(web::Bytes::from(frame)),
                receiver,
            )
        })
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
