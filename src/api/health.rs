//! Liveness, source states, Prometheus metrics and the web UI page.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use cuewarden_actors::job_manager::{ManagerStatus, ProviderStatus, StatusReport};
use cuewarden_actors::store::StoreHealth;
use serde_json::json;

use super::auth::Authorized;
use super::input::NoQuery;
use super::{ApiError, AppState};

/// The crate version, reported by `/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const UI_PAGE: &str = include_str!("ui.html");

/// `GET /health` (no auth). Always 200, so it stays a liveness probe; `status` is
/// `"degraded"`, with a `reason`, while the store was restored from a snapshot at start or
/// refuses writes (a full disk).
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.store.health() {
        StoreHealth::Ok => HttpResponse::Ok().json(json!({"status": "ok", "version": VERSION})),
        StoreHealth::Degraded(reason) => HttpResponse::Ok().json(json!({
            "status": "degraded",
            "version": VERSION,
            "reason": reason,
        })),
    }
}

/// `GET /health/sources`: every registered source, the subtitle providers (state, cooldown,
/// quota left), the libraries and the job manager.
pub async fn sources(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let manager: StatusReport = state.manager.send(ManagerStatus).await?;
    let providers = state.manager.send(ProviderStatus).await?;
    let sources = state.sources.reports();
    let libraries = state.intake.libraries().clone();
    let libraries = web::block(move || {
        let unresolved = libraries.unresolved();
        libraries
            .iter()
            .map(|library| {
                let found = !unresolved.contains(&library.root) && library.root.is_dir();
                json!({
                    "path": library.root,
                    "state": if found { "ok" } else { "missing" },
                    "languages": library.languages,
                })
            })
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "sources": sources,
        "providers": providers,
        "libraries": libraries,
        "job_manager": manager,
    })))
}

/// `GET /metrics`, Prometheus text format.
pub async fn metrics(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let manager: StatusReport = state.manager.send(ManagerStatus).await?;
    let store = state.store.clone();
    let (counts, last_seq) = web::block(move || {
        Ok::<_, cuewarden_actors::StoreError>((store.job_counts()?, store.last_event_seq()?))
    })
    .await??;
    let stats = state.store.stats();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP cuewarden_build_info Build information.\n# TYPE cuewarden_build_info gauge"
    );
    let _ = writeln!(out, "cuewarden_build_info{{version=\"{VERSION}\"}} 1");
    let _ = writeln!(
        out,
        "# HELP cuewarden_jobs Jobs in the store by status.\n# TYPE cuewarden_jobs gauge"
    );
    for (status, n) in counts {
        let _ = writeln!(out, "cuewarden_jobs{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP cuewarden_workers_running Workers running by kind.\n# TYPE cuewarden_workers_running gauge"
    );
    let _ = writeln!(
        out,
        "cuewarden_workers_running{{kind=\"download\"}} {}",
        manager.running_downloads
    );
    let _ = writeln!(
        out,
        "cuewarden_workers_running{{kind=\"translate\"}} {}",
        manager.running_translations
    );
    let _ = writeln!(
        out,
        "# HELP cuewarden_events_last_seq Sequence number of the last committed event.\n# TYPE cuewarden_events_last_seq gauge"
    );
    let _ = writeln!(out, "cuewarden_events_last_seq {last_seq}");
    let commits = stats.commits.load(Ordering::Relaxed);
    let changes = stats.changes.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP cuewarden_store_commits_total Durable store commits.\n# TYPE cuewarden_store_commits_total counter"
    );
    let _ = writeln!(out, "cuewarden_store_commits_total {commits}");
    let _ = writeln!(
        out,
        "# HELP cuewarden_store_changes_total Changes applied by store commits.\n# TYPE cuewarden_store_changes_total counter"
    );
    let _ = writeln!(out, "cuewarden_store_changes_total {changes}");
    let _ = writeln!(
        out,
        "# HELP cuewarden_store_commit_batch_size Changes per commit (group commit).\n# TYPE cuewarden_store_commit_batch_size histogram"
    );
    let mut cumulative = 0;
    for (i, bucket) in stats.batch_buckets.iter().enumerate() {
        cumulative += bucket.load(Ordering::Relaxed);
        if i + 1 < stats.batch_buckets.len() {
            let _ = writeln!(
                out,
                "cuewarden_store_commit_batch_size_bucket{{le=\"{}\"}} {cumulative}",
                (1u64 << (i + 1)) - 1
            );
        }
    }
    let _ = writeln!(
        out,
        "cuewarden_store_commit_batch_size_bucket{{le=\"+Inf\"}} {commits}"
    );
    let _ = writeln!(out, "cuewarden_store_commit_batch_size_sum {changes}");
    let _ = writeln!(out, "cuewarden_store_commit_batch_size_count {commits}");
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// `GET /`: the web UI (asks for the API key once, keeps it in the browser).
pub async fn ui(_: Authorized) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(UI_PAGE)
}
