//! The Translator's batching, integrity and cost rules against in-process fakes of the
//! service trait (fault injection); the HTTP clients have their own loopback fakes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::clients::TranslationLimits;

/// What the fake does with a request (by request number, then `Translate`).
#[derive(Debug, Clone)]
enum Fault {
    Error(TranslateError),
    DropLast,
    Swap,
    EmptyFirst,
    MergeFirstTwo,
}

/// A deterministic service: `hello` → `[fr] HELLO` outside tags; faults by request.
struct Fake {
    limits: TranslationLimits,
    faults: RefCell<VecDeque<Fault>>,
    /// A text that always comes back empty.
    poison: Option<String>,
    requests: RefCell<Vec<TranslationRequest>>,
}

impl Fake {
    fn new(max_texts: usize, max_bytes: usize, context: usize) -> Rc<Self> {
        Self::with(max_texts, max_bytes, context, Vec::new(), None)
    }

    fn with(
        max_texts: usize,
        max_bytes: usize,
        context: usize,
        faults: Vec<Fault>,
        poison: Option<&str>,
    ) -> Rc<Self> {
        Rc::new(Self {
            limits: TranslationLimits {
                max_texts,
                max_bytes,
                context,
            },
            faults: RefCell::new(faults.into()),
            poison: poison.map(str::to_owned),
            requests: RefCell::new(Vec::new()),
        })
    }
}

fn fake_translate(text: &str) -> String {
    let mut out = String::from("[fr] ");
    let mut depth = 0;
    for c in text.chars() {
        match c {
            '<' | '{' => depth += 1,
            '>' | '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && c != '>' && c != '}' {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl TranslationService for Fake {
    fn name(&self) -> &str {
        "fake"
    }

    fn limits(&self) -> TranslationLimits {
        self.limits
    }

    fn translate(
        &self,
        request: TranslationRequest,
    ) -> LocalBoxFuture<Result<Vec<String>, TranslateError>> {
        self.requests.borrow_mut().push(request.clone());
        let mut out: Vec<String> = request
            .texts
            .iter()
            .map(|t| {
                if self.poison.as_deref() == Some(t.as_str()) {
                    String::new()
                } else {
                    fake_translate(t)
                }
            })
            .collect();
        let fault = self.faults.borrow_mut().pop_front();
        let result = match fault {
            Some(Fault::Error(err)) => Err(err),
            Some(Fault::DropLast) => {
                out.pop();
                Ok(out)
            }
            Some(Fault::Swap) if out.len() > 1 => {
                out.swap(0, 1);
                Ok(out)
            }
            Some(Fault::EmptyFirst) => {
                out[0] = String::new();
                Ok(out)
            }
            Some(Fault::MergeFirstTwo) if out.len() > 2 => {
                let second = out.remove(1);
                out[0] = format!("{} {second}", out[0]);
                out.insert(1, String::new());
                Ok(out)
            }
            _ => Ok(out),
        };
        Box::pin(async move { result })
    }
}

fn film(n: usize) -> Vec<Cue> {
    (0..n)
        .map(|i| Cue {
            index: i as u32 + 1,
            start_ms: i as u64 * 2000,
            end_ms: i as u64 * 2000 + 1500,
            text: match i % 5 {
                0 => format!("<i>Line number {i}</i>"),
                1 => format!("{{\\an8}}Top line {i}\nsecond half {i}"),
                2 => format!("- Speaker one {i}.\n- Speaker two {i}."),
                3 => format!("It was <b>{i}</b> o'clock"),
                _ => format!("Plain words for cue {i}"),
            },
        })
        .collect()
}

fn session<'a>(service: &'a Fake, store: Option<&'a Store>, usage: &'a Usage) -> Session<'a> {
    // Leaked: the languages live for the test.
    let from: &'static Language = Box::leak(Box::new(Language::parse("en").unwrap()));
    let to: &'static Language = Box::leak(Box::new(Language::parse("fr").unwrap()));
    Session {
        service,
        store,
        budget: None,
        usage,
        from,
        to,
        job: "test".to_owned(),
        run_for: None,
    }
}

fn check_whole(cues: &[Cue], out: &[String]) {
    assert_eq!(cues.len(), out.len());
    for (cue, text) in cues.iter().zip(out) {
        assert_eq!(text, &expected(&cue.text), "cue {}", cue.index);
    }
}

/// What a correct translation of `text` by the fake is, dressed as the source.
fn expected(text: &str) -> String {
    let p = Prepared::new(text);
    p.restore(&fake_translate(&p.send)).unwrap()
}

#[actix_rt::test]
async fn batches_fill_the_limits_and_keep_every_cue() {
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    let cues = film(1649);
    let (out, stats) = session(&fake, None, &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    check_whole(&cues, &out);
    assert_eq!(stats.requests, 33, "ceil(1649 / 50)");
    assert!(stats.failed_cues.is_empty());
    assert_eq!(stats.translated_cues, 1649);
    // Tags and breaks are as the source had them.
    assert_eq!(out[0], "<i>[fr] LINE NUMBER 0</i>");
    assert_eq!(out[1], "{\\an8}[fr] TOP LINE\n1 SECOND HALF 1");
    assert_eq!(out[2], "[fr] - SPEAKER ONE 2.\n- SPEAKER TWO 2.");
    assert_eq!(out[3], "[fr] IT WAS <b>3</b> O'CLOCK");
    // Bytes limit: small batches when the texts are long.
    let fake = Fake::new(50, 200, 0);
    let (_, stats) = session(&fake, None, &usage)
        .translate_cues(&film(100))
        .await
        .unwrap();
    for request in fake.requests.borrow().iter() {
        let bytes: usize = request.texts.iter().map(String::len).sum();
        assert!(bytes <= 200, "{bytes} bytes in one request");
    }
    assert!(stats.requests > 2);
}

#[actix_rt::test]
async fn context_cues_surround_each_batch() {
    let fake = Fake::new(10, 128 * 1024, 3);
    let usage = Usage::default();
    let cues = film(25);
    let (out, _) = session(&fake, None, &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    check_whole(&cues, &out);
    let requests = fake.requests.borrow();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].before.is_empty());
    assert_eq!(requests[0].after.len(), 3);
    assert_eq!(requests[1].before, requests[0].texts[7..10].to_vec());
    assert_eq!(requests[1].after, requests[2].texts[0..3].to_vec());
    assert!(requests[2].after.is_empty());
}

#[actix_rt::test]
async fn bad_batches_are_halved_never_written_wrong() {
    for fault in [
        Fault::DropLast,
        Fault::Swap,
        Fault::EmptyFirst,
        Fault::MergeFirstTwo,
        Fault::Error(TranslateError::TooLarge),
        Fault::Error(TranslateError::Parse("numbers missing".to_owned())),
    ] {
        // The first answer is bad; the halves come back right.
        let cues: Vec<Cue> = film(40)
            .into_iter()
            .map(|mut c| {
                // Swapped texts of different tags are caught by the tag check; make the
                // first two cues tagged differently.
                if c.index == 2 {
                    c.text = "It was <b>now</b>".to_owned();
                }
                c
            })
            .collect();
        let fake = Fake::with(50, 128 * 1024, 0, vec![fault.clone()], None);
        let usage = Usage::default();
        let (out, stats) = session(&fake, None, &usage)
            .translate_cues(&cues)
            .await
            .unwrap();
        check_whole(&cues, &out);
        assert_eq!(stats.halvings, 1, "{fault:?}");
        assert_eq!(stats.requests, 3, "{fault:?}");
    }
}

#[actix_rt::test]
async fn a_cue_that_keeps_failing_keeps_its_source_text() {
    let cues = film(20);
    let poison = Prepared::new(&cues[7].text).send;
    let fake = Fake::with(50, 128 * 1024, 0, Vec::new(), Some(&poison));
    let usage = Usage::default();
    let (out, stats) = session(&fake, None, &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    assert_eq!(out[7], cues[7].text);
    for (i, cue) in cues.iter().enumerate().filter(|(i, _)| *i != 7) {
        assert_eq!(out[i], expected(&cue.text));
    }
    assert_eq!(stats.failed_cues.len(), 1);
    assert_eq!(stats.failed_cues[0].index, 8);
    assert_eq!(stats.failed_cues[0].reason, "empty translation");
    // 20 → 10 → 5 → 2|3 → … → the one cue twice: bounded, far from line by line doubling.
    assert!(stats.requests <= 12, "{} requests", stats.requests);
}

#[actix_rt::test]
async fn rate_limits_wait_quota_parks_auth_fails_at_once() {
    let cues = film(10);
    let usage = Usage::default();
    let fake = Fake::with(
        50,
        128 * 1024,
        0,
        vec![Fault::Error(TranslateError::RateLimited {
            retry_after: Some(Duration::from_millis(5)),
        })],
        None,
    );
    let (out, stats) = session(&fake, None, &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    check_whole(&cues, &out);
    assert_eq!((stats.rate_limited, stats.requests), (1, 2));

    let fake = Fake::with(
        50,
        128 * 1024,
        0,
        vec![Fault::Error(TranslateError::QuotaExhausted {
            resets_in: Some(Duration::from_secs(90)),
        })],
        None,
    );
    let Err((Stop::Park { reason, wait }, _)) =
        session(&fake, None, &usage).translate_cues(&cues).await
    else {
        panic!("quota must park");
    };
    assert_eq!(wait, Duration::from_secs(90));
    assert!(reason.contains("quota exhausted"), "{reason}");
    // The next job (same usage) waits without asking the service.
    let asked = fake.requests.borrow().len();
    let Err((Stop::Park { wait, .. }, stats)) = session(&fake, None, &usage)
        .translate_cues(&film(12)[11..])
        .await
    else {
        panic!("a spent quota parks the next job too");
    };
    assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90));
    assert_eq!((stats.requests, fake.requests.borrow().len()), (0, asked));
    let usage = Usage::default();

    let fake = Fake::with(
        50,
        128 * 1024,
        0,
        vec![Fault::Error(TranslateError::Auth(
            "this key belongs to api-free.deepl.com".to_owned(),
        ))],
        None,
    );
    let Err((Stop::Fail { error, retryable }, stats)) =
        session(&fake, None, &usage).translate_cues(&cues).await
    else {
        panic!("auth must fail");
    };
    assert!(!retryable);
    assert!(error.contains("api-free.deepl.com"), "{error}");
    assert_eq!(stats.requests, 1);
}

#[actix_rt::test]
async fn the_cache_answers_across_sessions_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let cues = film(60);
    {
        let store = Store::open(dir.path()).unwrap();
        let fake = Fake::new(50, 128 * 1024, 0);
        let usage = Usage::default();
        let (_, stats) = session(&fake, Some(&store), &usage)
            .translate_cues(&cues)
            .await
            .unwrap();
        assert_eq!(stats.requests, 2);
        store.close();
    }
    let store = Store::open(dir.path()).unwrap();
    // A second film sharing the first 40 lines.
    let mut second = cues[..40].to_vec();
    second.extend(film(70)[60..].iter().cloned());
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    let (out, stats) = session(&fake, Some(&store), &usage)
        .translate_cues(&second)
        .await
        .unwrap();
    check_whole(&second, &out);
    assert_eq!(stats.requests, 1);
    assert_eq!(fake.requests.borrow()[0].texts.len(), 10);
    assert_eq!((stats.cached_cues, stats.translated_cues), (40, 10));
    // The usage was counted and kept.
    let (month, _) = cost::month_of(crate::time::now_ms());
    let kept: HashMap<String, cost::MonthUsage> = store.state_as(cost::USAGE_KEY).unwrap().unwrap();
    assert_eq!(kept["fake"].month, month);
    assert_eq!(kept["fake"].characters, usage.used("fake", &month));
    assert!(usage.used("fake", &month) > 0);
}

#[actix_rt::test]
async fn the_monthly_budget_parks_before_overspending() {
    let cues = film(100);
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    let mut s = session(&fake, None, &usage);
    // Enough for the first batch only.
    let first: u64 = cues[..50]
        .iter()
        .map(|c| Prepared::new(&c.text).send.chars().count() as u64)
        .sum();
    s.budget = Some(first + 10);
    let Err((Stop::Park { reason, wait }, stats)) = s.translate_cues(&cues).await else {
        panic!("the budget must park the job");
    };
    assert_eq!(stats.requests, 1);
    assert!(reason.contains("budget"), "{reason}");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(31 * 86400));
    let (month, _) = cost::month_of(crate::time::now_ms());
    assert_eq!(usage.used("fake", &month), first);
    assert!(usage.used("fake", &month) <= first + 10);
}

#[actix_rt::test]
async fn identical_lines_are_sent_once() {
    let cues: Vec<Cue> = (0..30)
        .map(|i| Cue {
            index: i + 1,
            start_ms: u64::from(i) * 1000,
            end_ms: u64::from(i) * 1000 + 900,
            text: if i % 2 == 0 {
                "Yeah.".to_owned()
            } else {
                format!("<i>Line {i}</i>")
            },
        })
        .collect();
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    let (out, stats) = session(&fake, None, &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    check_whole(&cues, &out);
    assert_eq!(fake.requests.borrow()[0].texts.len(), 16);
    assert_eq!((stats.translated_cues, stats.cached_cues), (30, 0));
}

#[actix_rt::test]
async fn a_long_translation_parks_itself_and_goes_on_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cues = film(120);
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    let mut s = session(&fake, Some(&store), &usage);
    s.run_for = Some(Duration::ZERO);
    let Err((Stop::Park { wait, reason }, stats)) = s.translate_cues(&cues).await else {
        panic!("a spent slice parks");
    };
    assert_eq!(
        (wait, stats.requests),
        (CONTINUE_AFTER, IN_FLIGHT as u32),
        "{reason}"
    );
    // One batch per slice: each attempt goes on where the last stopped.
    let fake = Fake::with(1, 128 * 1024, 0, Vec::new(), None);
    let mut s = session(&fake, Some(&store), &usage);
    s.run_for = Some(Duration::from_millis(1));
    let mut requests = 0;
    for _ in 0..200 {
        match s.translate_cues(&cues[100..105]).await {
            Ok((out, _)) => {
                check_whole(&cues[100..105], &out);
                requests = fake.requests.borrow().len();
                break;
            }
            Err((Stop::Park { .. }, _)) => {}
            Err((stop, _)) => panic!("{stop:?}"),
        }
    }
    assert_eq!(requests, 5, "every cue sent once over the slices");
}

#[actix_rt::test]
async fn a_cache_hit_counts_as_a_use_so_the_cleanup_keeps_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cues = film(20);
    let fake = Fake::new(50, 128 * 1024, 0);
    let usage = Usage::default();
    session(&fake, Some(&store), &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    // Every line as if last used a year ago…
    let keys: Vec<String> = fake.requests.borrow()[0]
        .texts
        .iter()
        .map(|t| crate::store::translation_key("fake", "en", "fr", t))
        .collect();
    let sent = fake.requests.borrow()[0].texts.clone();
    let hits = store
        .cached_translations("fake", "en", "fr", &sent)
        .unwrap();
    assert!(hits.iter().all(Option::is_some), "the keys are the cache's");
    let year_ago = crate::store::day_of(crate::time::now_ms()) - 365;
    store
        .submit(vec![Change::TouchTranslations {
            keys: keys.clone(),
            day: year_ago,
        }])
        .await
        .unwrap();
    // …then a second film with the same lines is answered from the cache: used today.
    let again = Fake::new(50, 128 * 1024, 0);
    let (_, stats) = session(&again, Some(&store), &usage)
        .translate_cues(&cues)
        .await
        .unwrap();
    assert_eq!((stats.cached_cues, stats.requests), (20, 0));
    let policy = crate::store::CleanupPolicy::new(Duration::MAX, Duration::MAX)
        .with_translations_kept(Some(Duration::from_secs(180 * 86_400)));
    let store_for_cleanup = store.clone();
    let report = tokio::task::spawn_blocking(move || {
        store_for_cleanup.cleanup(&policy, crate::time::now_ms())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.translations_deleted, 0, "{report:?}");
    assert_eq!(report.translations_examined, keys.len() as u64);
}
