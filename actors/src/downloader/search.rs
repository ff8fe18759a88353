//! The search-and-rank half of a download attempt: ask the providers that are not cooling
//! down (in priority order, stopping early at a hash match), score every candidate with an
//! explanation ([`crate::scoring`]), try the best ones above `min_score`, and turn what the
//! providers answered into cooldowns and quotas for the JobManager to keep.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::clients::{Candidate, ProviderError, SubtitleProvider, SubtitleQuery};
use crate::job::Job;
use crate::provenance::Blacklist;
use crate::scoring::{Preferences, Scored, VideoFacts, score};
use crate::store::{CooldownKind, ProviderState};
use crate::time::now_ms;
use crate::worker::{Outcome, WorkerContext};

/// Cooldown after a 429 without `Retry-After`.
pub const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(60);
/// Cooldown after an exhausted quota with no reset time.
pub const DEFAULT_QUOTA_COOLDOWN: Duration = Duration::from_secs(6 * 3600);
/// Cooldown after refused credentials: long, as OpenSubtitles locks an account out after
/// repeated failures; it ends at once for new jobs when the credentials change.
pub const AUTH_COOLDOWN: Duration = Duration::from_secs(6 * 3600);
/// Cooldown after an answer we cannot read.
pub const PARSE_COOLDOWN: Duration = Duration::from_secs(10 * 60);
/// Cooldown once a provider was unavailable [`UNAVAILABLE_AFTER`] times in a row; it
/// doubles with each further failure in a row, up to [`UNAVAILABLE_MAX_COOLDOWN`].
pub const UNAVAILABLE_COOLDOWN: Duration = Duration::from_secs(5 * 60);
/// The longest cooldown of a provider that stays unavailable (a long outage is asked
/// about once an hour, not every 5 minutes).
pub const UNAVAILABLE_MAX_COOLDOWN: Duration = Duration::from_secs(3600);

/// The cooldown after `failures` unavailable calls in a row (at least [`UNAVAILABLE_AFTER`]).
pub fn unavailable_cooldown(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(UNAVAILABLE_AFTER).min(16);
    UNAVAILABLE_COOLDOWN
        .saturating_mul(1 << doublings)
        .min(UNAVAILABLE_MAX_COOLDOWN)
}
/// Failed calls in a row (5xx, timeouts) that cool a provider down.
pub const UNAVAILABLE_AFTER: u32 = 3;

/// Runner-up candidates listed in the `subtitle.ready` event.
const RUNNERS_UP: usize = 5;

/// The reason a job waits when every provider cools down.
pub const ALL_COOLING_REASON: &str = "every subtitle provider is cooling down";

/// A provider called in this attempt: the errors it gave, and whether a call succeeded.
pub(crate) type Touched = (Rc<dyn SubtitleProvider>, Vec<ProviderError>, bool);

/// A candidate with its provider and its score.
#[derive(Clone)]
pub(crate) struct Ranked {
    /// The provider that offers it.
    pub(crate) provider: Rc<dyn SubtitleProvider>,
    /// What the provider said of it.
    pub(crate) candidate: Candidate,
    /// Its score and why.
    pub(crate) scored: Scored,
}

impl Ranked {
    fn summary(&self) -> serde_json::Value {
        json!({
            "provider": self.candidate.provider,
            "id": self.candidate.id,
            "release": self.candidate.release,
            "score": self.scored.score,
            "rejected": self.scored.rejected,
        })
    }
}

/// The cooldown in force for `provider` at `now`: its end and state. A cooldown for
/// refused credentials ends when the provider's credentials are not the refused ones.
pub(crate) fn cooldown_of(
    state: Option<&ProviderState>,
    provider: &dyn SubtitleProvider,
    now: i64,
) -> Option<i64> {
    let state = state?;
    let until = state.cooling_until(now)?;
    if state.cooldown_kind == Some(CooldownKind::Auth)
        && state.refused_credentials.is_some()
        && state.refused_credentials != provider.credentials_id()
    {
        return None;
    }
    Some(until)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What an error says about the provider, applied to its state.
fn apply_error(
    state: &mut ProviderState,
    provider: &dyn SubtitleProvider,
    err: &ProviderError,
    now: i64,
) {
    let (kind, wait, reason) = match err {
        ProviderError::RateLimited { retry_after } => (
            CooldownKind::RateLimit,
            retry_after.unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN),
            "rate limited".to_owned(),
        ),
        ProviderError::QuotaExhausted { resets_in } => {
            let wait = resets_in.unwrap_or(DEFAULT_QUOTA_COOLDOWN);
            state.quota_remaining = Some(0);
            state.quota_resets_at_ms = Some(now.saturating_add(millis(wait)));
            (CooldownKind::Quota, wait, "quota exhausted".to_owned())
        }
        ProviderError::Auth(message) => {
            state.refused_credentials = provider.credentials_id();
            (
                CooldownKind::Auth,
                AUTH_COOLDOWN,
                format!("bad credentials: {message}"),
            )
        }
        ProviderError::Parse(message) => (
            CooldownKind::Parse,
            PARSE_COOLDOWN,
            format!("unreadable answer: {message}"),
        ),
        ProviderError::Unavailable(message) => {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            if state.consecutive_failures < UNAVAILABLE_AFTER {
                warn!(provider = %state.provider, error = %err, "provider call failed");
                return;
            }
            (
                CooldownKind::Unavailable,
                unavailable_cooldown(state.consecutive_failures),
                format!("unavailable: {message}"),
            )
        }
        ProviderError::Permanent(_) => {
            warn!(provider = %state.provider, error = %err, "provider call failed");
            return;
        }
    };
    warn!(provider = %state.provider, seconds = wait.as_secs(), %reason, "provider cooling down");
    let until = now.saturating_add(millis(wait));
    if state.cooldown_until_ms.is_none_or(|old| old < until) {
        state.cooldown_until_ms = Some(until);
        state.reason = Some(reason);
        state.cooldown_kind = Some(kind);
    }
}

/// What a search of every provider not cooling down found, ranked best first.
pub(crate) struct Searched {
    /// The candidates in the job's language, best first.
    pub(crate) ranked: Vec<Ranked>,
    /// Each provider called, with the errors it gave and whether a call succeeded.
    pub(crate) touched: BTreeMap<String, Touched>,
    /// The providers skipped because they cool down.
    pub(crate) cooling: Vec<String>,
    /// What was rejected for this video.
    pub(crate) blacklist: Blacklist,
}

/// Reads the subtitles rejected for `job`'s video (an empty list without a store, or with
/// a logged error when it cannot be read).
pub(crate) async fn blacklist_of(job: &Job, context: &WorkerContext) -> Blacklist {
    let Some(store) = context.store.clone() else {
        return Blacklist::default();
    };
    let video = job.path.clone();
    match tokio::task::spawn_blocking(move || store.blacklist_for(&video)).await {
        Ok(Ok(entries)) => Blacklist::new(entries),
        Ok(Err(err)) => {
            warn!(job_id = %job.id, error = %crate::store::error_chain(&err), "cannot read the blacklist");
            Blacklist::default()
        }
        Err(err) => {
            warn!(job_id = %job.id, error = %err, "the blacklist read did not run");
            Blacklist::default()
        }
    }
}

/// Asks every provider that is not cooling down for `job`'s language and ranks what they
/// offer; with `stop_at_sure`, a sure match (the same file) ends the search (provider
/// priority).
pub(crate) async fn search_providers(
    job: &Job,
    context: &WorkerContext,
    stop_at_sure: bool,
) -> Searched {
    let blacklist = blacklist_of(job, context).await;
    let video = job.path.clone();
    let movie_hash = tokio::task::spawn_blocking(move || crate::hash::movie_hash(&video))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|err| {
            warn!(job_id = %job.id, error = %err, "cannot hash the video");
            None
        });
    let facts = VideoFacts::from_path(&job.path);
    let query = SubtitleQuery {
        video: job.path.clone(),
        language: job.language.clone(),
        jellyfin_item_id: job.jellyfin_item_id.clone(),
        facts,
        movie_hash,
    };
    let preferences = Preferences {
        hearing_impaired: context.hearing_impaired,
    };
    let now = now_ms();
    // Each provider called, with the errors it gave and whether a call succeeded.
    let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
    let mut ranked: Vec<Ranked> = Vec::new();
    let mut cooling: Vec<String> = Vec::new();
    for provider in &context.providers {
        let name = provider.name().to_owned();
        let state = context.provider_states.get(&name);
        if cooldown_of(state.as_ref(), provider.as_ref(), now).is_some() {
            cooling.push(name);
            continue;
        }
        if let Some(state) = &state {
            provider.restore(state);
        }
        let entry = touched
            .entry(name.clone())
            .or_insert_with(|| (provider.clone(), Vec::new(), false));
        match provider.search(&query).await {
            Ok(found) => {
                entry.2 = true;
                let before = ranked.len();
                ranked.extend(
                    found
                        .into_iter()
                        .filter(|c| c.language == job.language)
                        .map(|mut candidate| {
                            // No hash was sent (a file too small for one): a provider's
                            // "hash match" cannot be true and must not end the search.
                            candidate.meta.hash_match &= query.movie_hash.is_some();
                            candidate
                        })
                        .map(|candidate| Ranked {
                            provider: provider.clone(),
                            scored: score(
                                &query.facts,
                                query.movie_hash.is_some(),
                                &candidate,
                                preferences,
                            ),
                            candidate,
                        }),
                );
                // Provider priority: a sure match (same file) ends the search.
                let sure = ranked[before..].iter().any(|r| {
                    r.candidate.meta.hash_match
                        && r.scored.rejected.is_none()
                        && r.scored.score >= context.min_score
                        && !blacklist.has_candidate(&r.candidate.provider, &r.candidate.id)
                });
                if sure && stop_at_sure {
                    break;
                }
            }
            Err(err) => entry.1.push(err),
        }
    }
    ranked.sort_by(|a, b| {
        b.scored
            .score
            .cmp(&a.scored.score)
            .then(b.candidate.meta.downloads.cmp(&a.candidate.meta.downloads))
    });
    Searched {
        ranked,
        touched,
        cooling,
        blacklist,
    }
}

/// Folds what the providers told in this attempt (new cooldowns, quotas, sessions) into
/// their states; pushes the changed ones on `provider_updates`. Answers whether every
/// provider now cools down, and when that was decided.
pub(crate) fn fold_provider_states(
    context: &WorkerContext,
    touched: &BTreeMap<String, Touched>,
    provider_updates: &mut Vec<ProviderState>,
) -> (bool, i64) {
    let after = now_ms();
    let mut all_cooling = !context.providers.is_empty();
    for provider in &context.providers {
        let name = provider.name();
        let old = context.provider_states.get(name);
        let mut state = old.clone().unwrap_or_else(|| ProviderState {
            provider: name.to_owned(),
            ..ProviderState::default()
        });
        if let Some((provider, errors, succeeded)) = touched.get(name) {
            provider.record(&mut state);
            if *succeeded && errors.is_empty() {
                state.consecutive_failures = 0;
            }
            for err in errors {
                apply_error(&mut state, provider.as_ref(), err, after);
            }
        }
        if cooldown_of(Some(&state), provider.as_ref(), after).is_none() {
            all_cooling = false;
        }
        if old.as_ref() != Some(&state) && touched.contains_key(name) {
            provider_updates.push(state);
        }
    }
    (all_cooling, after)
}

/// Searches, ranks, downloads and writes; `translate` is the fallback when nothing is
/// written and a translation source exists.
pub(super) async fn search_and_write(
    job: &Job,
    context: &WorkerContext,
    provider_updates: &mut Vec<ProviderState>,
    can_translate: bool,
    translate: impl Fn() -> Option<Outcome>,
) -> Outcome {
    let Searched {
        ranked,
        mut touched,
        cooling,
        blacklist,
    } = search_providers(job, context, true).await;
    let eligible: Vec<usize> = (0..ranked.len())
        .filter(|&i| {
            ranked[i].scored.rejected.is_none()
                && ranked[i].scored.score >= context.min_score
                && !blacklist.has_candidate(&ranked[i].candidate.provider, &ranked[i].candidate.id)
        })
        .collect();
    let mut written = None;
    let mut write_errors: Vec<String> = Vec::new();
    for i in eligible {
        let chosen = &ranked[i];
        let name = chosen.candidate.provider.clone();
        if let Some((_, errors, _)) = touched.get(&name)
            && errors.iter().any(|e| {
                matches!(
                    e,
                    ProviderError::QuotaExhausted { .. }
                        | ProviderError::RateLimited { .. }
                        | ProviderError::Auth(_)
                )
            })
        {
            // That provider said stop: its other candidates wait too.
            continue;
        }
        let result = chosen.provider.download(&chosen.candidate).await;
        let entry = touched
            .entry(name.clone())
            .or_insert_with(|| (chosen.provider.clone(), Vec::new(), false));
        match result {
            Ok(bytes) => {
                entry.2 = true;
                match super::write_candidate(job, &chosen.candidate, bytes, context, &blacklist)
                    .await
                {
                    Ok(done) => {
                        written = Some((i, done));
                        break;
                    }
                    Err(error) => write_errors.push(format!("{name}: {error}")),
                }
            }
            Err(err) => entry.1.push(err),
        }
    }

    // What the providers told: new cooldowns, quotas, sessions.
    let (all_cooling, after) = fold_provider_states(context, &touched, provider_updates);
    let state_of = |name: &str| {
        provider_updates
            .iter()
            .rev()
            .find(|s| s.provider == name)
            .cloned()
            .or_else(|| context.provider_states.get(name))
    };

    if let Some((i, super::WrittenCandidate { path, detail })) = written {
        let chosen = &ranked[i];
        let candidate = &chosen.candidate;
        info!(job_id = %job.id, provider = %candidate.provider, score = chosen.scored.score, path = %path.display(), "subtitle written");
        let runners_up: Vec<_> = ranked
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .take(RUNNERS_UP)
            .map(|(_, r)| r.summary())
            .collect();
        return Outcome::Written {
            path,
            producer: candidate.provider.clone(),
            detail: json!({
                "score": chosen.scored.score,
                "release": candidate.release,
                "id": candidate.id,
                "hearing_impaired": candidate.hearing_impaired,
                "forced": candidate.forced,
                "machine_translated": candidate.meta.machine_translated
                    || candidate.meta.ai_translated,
                "breakdown": chosen.scored.breakdown,
                "min_score": context.min_score,
                "candidates": ranked.len(),
                "runners_up": runners_up,
                "written": detail,
            }),
        };
    }
    if can_translate && let Some(outcome) = translate() {
        return outcome;
    }
    // Bad credentials are said plainly, and wait (no retry is burnt on them).
    let refused: Vec<String> = context
        .providers
        .iter()
        .filter_map(|p| {
            let state = state_of(p.name())?;
            (state.cooldown_kind == Some(CooldownKind::Auth)
                && cooldown_of(Some(&state), p.as_ref(), after).is_some())
            .then(|| {
                format!(
                    "{}: {}",
                    p.name(),
                    state.reason.unwrap_or_else(|| "bad credentials".to_owned())
                )
            })
        })
        .collect();
    let earliest = context
        .providers
        .iter()
        .filter_map(|p| cooldown_of(state_of(p.name()).as_ref(), p.as_ref(), after))
        .min();
    let wait_until = |end: i64| Duration::from_millis(u64::try_from(end - after).unwrap_or(0));
    if all_cooling {
        let reason = if refused.is_empty() {
            ALL_COOLING_REASON.to_owned()
        } else {
            format!(
                "{ALL_COOLING_REASON}; {} (fix the provider's settings and restart)",
                refused.join("; ")
            )
        };
        return Outcome::NothingFound {
            reason,
            retry_after: earliest.map(wait_until),
        };
    }
    let errors: Vec<(String, &ProviderError)> = touched
        .iter()
        .flat_map(|(name, (_, errors, _))| errors.iter().map(move |e| (name.clone(), e)))
        .collect();
    let mut summary: Vec<String> = errors
        .iter()
        .map(|(name, err)| format!("{name}: {err}"))
        .collect();
    summary.extend(write_errors.iter().cloned());
    let summary = summary.join("; ");
    let searched: Vec<&String> = touched.keys().collect();
    let all_failed = touched
        .values()
        .all(|(_, errors, ok)| !ok && !errors.is_empty());
    if all_failed && ranked.is_empty() {
        let retryable = errors
            .iter()
            .any(|(_, e)| !matches!(e, ProviderError::Permanent(_)));
        return Outcome::Failed {
            error: summary,
            retryable,
        };
    }
    let is_blacklisted =
        |r: &&Ranked| blacklist.has_candidate(&r.candidate.provider, &r.candidate.id);
    let blacklisted = ranked.iter().filter(is_blacklisted).count();
    let others: Vec<&Ranked> = ranked.iter().filter(|r| !is_blacklisted(r)).collect();
    let below = others
        .iter()
        .filter(|r| r.scored.score < context.min_score || r.scored.rejected.is_some())
        .count();
    let mut reason = format!(
        "no {} subtitle found (searched {})",
        job.language,
        searched
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if below > 0 {
        reason.push_str(&format!(
            "; {below} candidate(s) below min_score {} (best {})",
            context.min_score,
            others.first().map_or(0, |r| r.scored.score)
        ));
    }
    if blacklisted > 0 {
        reason.push_str(&format!(
            "; {blacklisted} candidate(s) rejected for this video"
        ));
    }
    if !cooling.is_empty() {
        reason.push_str(&format!("; cooling down: {}", cooling.join(", ")));
    }
    if !summary.is_empty() {
        reason.push_str(&format!("; errors: {summary}"));
    }
    if job.auto_translate && context.translator.is_none() && !context.translate_from.is_empty() {
        reason.push_str("; no [translator] configured to translate one");
    }
    Outcome::NothingFound {
        reason,
        retry_after: None,
    }
}
