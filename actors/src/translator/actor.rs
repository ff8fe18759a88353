//! The Translator actor: one per running translation, never supervised. It always answers
//! its [`RunJob`] with an [`Outcome`]; the JobManager decides what follows.

use std::rc::Rc;

use actix::prelude::*;

use super::translate;
use crate::downloader::WorkerContext;
use crate::job::Job;
use crate::job_manager::Outcome;
use crate::job_manager::actor::{RunJob, StopWork};

/// Translates the source subtitle of one job.
pub struct Translator {
    job: Job,
    context: Rc<WorkerContext>,
}

impl Translator {
    /// A worker for `job`.
    pub fn new(job: Job, context: Rc<WorkerContext>) -> Self {
        Self { job, context }
    }
}

impl Actor for Translator {
    type Context = Context<Self>;
}

impl Handler<RunJob> for Translator {
    type Result = ResponseActFuture<Self, Outcome>;

    fn handle(&mut self, _: RunJob, _: &mut Self::Context) -> Self::Result {
        let (job, context) = (self.job.clone(), self.context.clone());
        Box::pin(
            translate(job, context)
                .into_actor(self)
                .map(|outcome, _, ctx| {
                    ctx.stop();
                    outcome
                }),
        )
    }
}

impl Handler<StopWork> for Translator {
    type Result = ();

    fn handle(&mut self, _: StopWork, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
