//! The translation of one job: read the source subtitle, send its cues to the service in
//! batches sized to the service's limit, check every batch comes back whole (retrying a
//! batch that does not), keep index and timing, write the result next to the video.

use std::rc::Rc;

use serde_json::json;
use tracing::warn;

use crate::clients::{LocalBoxFuture, TranslateError, TranslationRequest};
use crate::files::{subtitle_path, write_atomically};
use crate::job::Job;
use crate::refresh::refresh_after_write;
use crate::subtitle::{parse_srt, write_srt};
use crate::worker::{Outcome, Work, WorkReport, WorkerContext};

/// Attempts per batch when the service answers a different number of texts.
pub const BATCH_ATTEMPTS: usize = 3;

/// Translates the source subtitle of one job (a [`Work`] run by the
/// [`Worker`](crate::worker::Worker) shell).
#[derive(Debug, Clone, Copy, Default)]
pub struct Translator;

impl Work for Translator {
    fn run(job: Job, context: Rc<WorkerContext>) -> LocalBoxFuture<WorkReport> {
        Box::pin(async move {
            let outcome = translate(job.clone(), context.clone()).await;
            let mut report = WorkReport::from(outcome);
            if let Outcome::Written { path, .. } = &report.outcome {
                report.events = refresh_after_write(&job, path, false, &context).await;
            }
            report
        })
    }
}

/// Runs one translation attempt for `job`.
pub async fn translate(job: Job, context: Rc<WorkerContext>) -> Outcome {
    let fail = |error: String, retryable: bool| Outcome::Failed { error, retryable };
    let Some(service) = context.translator.clone() else {
        return fail("no translator configured".to_owned(), false);
    };
    let (Some(source), Some(from)) = (job.translation_source.clone(), job.translation_from.clone())
    else {
        return fail("no source subtitle to translate from".to_owned(), false);
    };
    let path = source.clone();
    let bytes = match tokio::task::spawn_blocking(move || std::fs::read(&path)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => return fail(format!("cannot read {}: {err}", source.display()), true),
        Err(err) => return fail(err.to_string(), true),
    };
    let mut cues = match parse_srt(&bytes) {
        Ok(cues) => cues,
        Err(err) => return fail(format!("cannot parse {}: {err}", source.display()), false),
    };
    let batch_size = service.limits().max_texts.max(1);
    for chunk in cues.chunks_mut(batch_size) {
        let texts: Vec<String> = chunk.iter().map(|c| c.text.clone()).collect();
        let mut translated = None;
        for attempt in 1..=BATCH_ATTEMPTS {
            let request = TranslationRequest {
                texts: texts.clone(),
                from: from.clone(),
                to: job.language.clone(),
                before: Vec::new(),
                after: Vec::new(),
            };
            match service.translate(request).await {
                Ok(out) if out.len() == texts.len() => {
                    translated = Some(out);
                    break;
                }
                Ok(out) => {
                    warn!(job_id = %job.id, attempt, sent = texts.len(), received = out.len(), "translation batch came back incomplete")
                }
                Err(TranslateError::RateLimited { retry_after }) => {
                    return Outcome::NothingFound {
                        reason: format!("{} is rate limiting", service.name()),
                        retry_after,
                    };
                }
                Err(TranslateError::QuotaExhausted { resets_in }) => {
                    return Outcome::NothingFound {
                        reason: format!("{} quota exhausted", service.name()),
                        retry_after: resets_in,
                    };
                }
                Err(err @ (TranslateError::TooLarge | TranslateError::Parse(_))) => {
                    warn!(job_id = %job.id, attempt, error = %err, "translation batch failed");
                }
                Err(err @ TranslateError::Unavailable(_)) => return fail(err.to_string(), true),
                Err(err @ (TranslateError::Permanent(_) | TranslateError::Auth(_))) => {
                    return fail(err.to_string(), false);
                }
            }
        }
        let Some(out) = translated else {
            return fail(
                format!(
                    "{} kept answering a different number of cues than sent",
                    service.name()
                ),
                true,
            );
        };
        for (cue, text) in chunk.iter_mut().zip(out) {
            cue.text = text;
        }
    }
    let target = subtitle_path(&job.path, &job.language, false, false);
    let text = write_srt(&cues);
    let (path, libraries) = (target.clone(), context.libraries.clone());
    match tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes(), &libraries))
        .await
    {
        Ok(Ok(_)) => Outcome::Written {
            path: target,
            producer: service.name().to_owned(),
            detail: json!({"source": source, "from": from, "cues": cues.len()}),
        },
        Ok(Err(err)) => fail(err.to_string(), true),
        Err(err) => fail(err.to_string(), true),
    }
}
