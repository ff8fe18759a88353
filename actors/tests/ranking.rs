//! The search-and-rank half of the Downloader with in-process providers: priority order
//! with an early stop at a hash match, the best score across providers, `min_score`, and
//! what errors do to a provider (cooldown kinds) and to the job (bad credentials wait, and
//! burn no retry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use cuewarden_actors::JobStatus;
use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};
use cuewarden_actors::event::kind;
use cuewarden_actors::store::CooldownKind;
use cuewarden_actors::time::now_ms;

/// A provider that offers fixed candidates (or fails) and counts its calls.
struct Offering {
    name: &'static str,
    offers: Vec<(String, String, CandidateMeta)>,
    error: RefCell<Option<ProviderError>>,
    searches: Cell<usize>,
    downloaded: RefCell<Vec<String>>,
}

impl Offering {
    fn new(name: &'static str, offers: &[(&str, &str, CandidateMeta)]) -> Rc<Self> {
        Rc::new(Self {
            name,
            offers: offers
                .iter()
                .map(|(id, release, meta)| ((*id).to_owned(), (*release).to_owned(), meta.clone()))
                .collect(),
            error: RefCell::new(None),
            searches: Cell::new(0),
            downloaded: RefCell::new(Vec::new()),
        })
    }

    fn failing(name: &'static str, error: ProviderError) -> Rc<Self> {
        let provider = Self::new(name, &[]);
        *provider.error.borrow_mut() = Some(error);
        provider
    }
}

impl SubtitleProvider for Offering {
    fn name(&self) -> &str {
        self.name
    }

    fn search(
        &self,
        query: &SubtitleQuery,
    ) -> LocalBoxFuture<Result<Vec<Candidate>, ProviderError>> {
        self.searches.set(self.searches.get() + 1);
        if let Some(err) = self.error.borrow().clone() {
            return Box::pin(async move { Err(err) });
        }
        let found: Vec<Candidate> = self
            .offers
            .iter()
            .map(|(id, release, meta)| Candidate {
                provider: self.name.to_owned(),
                id: id.clone(),
                language: query.language.clone(),
                score: 0,
                hearing_impaired: false,
                forced: false,
                release: release.clone(),
                meta: meta.clone(),
            })
            .collect();
        Box::pin(async move { Ok(found) })
    }

    fn download(&self, candidate: &Candidate) -> LocalBoxFuture<Result<Vec<u8>, ProviderError>> {
        self.downloaded.borrow_mut().push(candidate.id.clone());
        Box::pin(async { Ok(PROVIDED_SRT.as_bytes().to_vec()) })
    }

    fn credentials_id(&self) -> Option<String> {
        Some("creds-1".to_owned())
    }
}

fn titled() -> CandidateMeta {
    CandidateMeta {
        title: Some("Movie".to_owned()),
        year: Some(2019),
        ..CandidateMeta::default()
    }
}

fn start(
    sandbox: &Sandbox,
    store: &cuewarden_actors::Store,
    providers: &[Rc<Offering>],
) -> actix::Addr<cuewarden_actors::job_manager::JobManager> {
    let mut workers = sandbox.workers();
    workers.providers = providers
        .iter()
        .map(|p| p.clone() as Rc<dyn SubtitleProvider>)
        .collect();
    start_manager(store, workers, settings())
}

#[actix_rt::test]
async fn a_hash_match_from_the_first_provider_ends_the_search() {
    let sandbox = Sandbox::new();
    // Big enough for a movie hash: a provider's hash match counts only when one was sent.
    std::fs::write(&sandbox.video, vec![7u8; 256 * 1024]).unwrap();
    let store = sandbox.open_store();
    let sure = CandidateMeta {
        hash_match: true,
        ..titled()
    };
    let first = Offering::new("first", &[("a1", "Movie.2019", sure)]);
    let second = Offering::new("second", &[("b1", "Movie.2019", titled())]);
    let manager = start(&sandbox, &store, &[first.clone(), second.clone()]);
    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    job_in(&store, id, JobStatus::Done).await;
    assert_eq!(
        second.searches.get(),
        0,
        "a lower-priority provider was asked"
    );
    assert_eq!(*first.downloaded.borrow(), ["a1"]);
}

#[actix_rt::test]
async fn without_a_sure_match_every_provider_is_asked_and_the_best_score_wins() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let machine = CandidateMeta {
        machine_translated: true,
        ..titled()
    };
    let first = Offering::new("first", &[("a1", "Movie.2019", machine)]);
    let second = Offering::new("second", &[("b1", "Movie.2019", titled())]);
    let manager = start(&sandbox, &store, &[first.clone(), second.clone()]);
    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    job_in(&store, id, JobStatus::Done).await;
    assert_eq!(first.searches.get(), 1);
    assert!(first.downloaded.borrow().is_empty());
    assert_eq!(*second.downloaded.borrow(), ["b1"]);

    let events = events(&store, id);
    let ready = events.iter().find(|e| e.kind == kind::READY).unwrap();
    let detail = &ready.payload["detail"];
    assert_eq!(ready.payload["producer"], "second");
    assert_eq!(detail["score"], 100);
    assert_eq!(detail["runners_up"][0]["id"], "a1");
    assert_eq!(detail["runners_up"][0]["score"], 60);
    assert_eq!(detail["candidates"], 2);
}

#[actix_rt::test]
async fn candidates_under_min_score_are_not_taken_and_the_reason_says_so() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let other_movie = CandidateMeta {
        title: Some("Another Film".to_owned()),
        year: Some(1990),
        ..CandidateMeta::default()
    };
    let only = Offering::new("only", &[("x", "Another.Film.1990", other_movie)]);
    let manager = start(&sandbox, &store, std::slice::from_ref(&only));
    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Waiting).await;
    assert!(only.downloaded.borrow().is_empty());
    assert_eq!(
        job.error.as_deref(),
        Some("no fr subtitle found (searched only); 1 candidate(s) below min_score 60 (best 0)")
    );
}

#[actix_rt::test]
async fn bad_credentials_make_the_job_wait_plainly_without_a_failed_attempt() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let refused = Offering::failing(
        "os",
        ProviderError::Auth("HTTP 401: invalid username/password".to_owned()),
    );
    let manager = start(&sandbox, &store, std::slice::from_ref(&refused));
    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Waiting).await;
    assert_eq!(job.failures, 0);
    assert_eq!(
        job.error.as_deref(),
        Some(
            "every subtitle provider is cooling down; os: bad credentials: HTTP 401: invalid username/password (fix the provider's settings and restart)"
        )
    );
    assert!(job.wake_at_ms.unwrap() > now_ms() + 5 * 3600 * 1000);
    let state = store.provider_states().unwrap().pop().unwrap();
    assert_eq!(state.cooldown_kind, Some(CooldownKind::Auth));
    assert_eq!(state.refused_credentials.as_deref(), Some("creds-1"));
}

#[actix_rt::test]
async fn three_unavailable_calls_in_a_row_cool_a_provider_down() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let down = Offering::failing("down", ProviderError::Unavailable("HTTP 503".to_owned()));
    let manager = start(&sandbox, &store, std::slice::from_ref(&down));
    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_where(&store, id, "waiting for the cooldown", |j| {
        j.error.as_deref() == Some("every subtitle provider is cooling down")
    })
    .await;
    assert_eq!(down.searches.get(), 3);
    assert_eq!(
        job.failures, 2,
        "the third failure became a cooldown, not a failed attempt"
    );
    let state = store.provider_states().unwrap().pop().unwrap();
    assert_eq!(state.cooldown_kind, Some(CooldownKind::Unavailable));
    assert_eq!(state.consecutive_failures, 3);
    assert!(state.cooling_until(now_ms()).unwrap() > now_ms() + 4 * 60 * 1000);
}
