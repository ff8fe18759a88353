//! The Downloader actor: one per running download, never supervised. It always answers
//! its [`RunJob`] with an [`Outcome`]; the JobManager decides what follows.

use std::rc::Rc;

use actix::prelude::*;

use super::{WorkerContext, download};
use crate::job::Job;
use crate::job_manager::Outcome;
use crate::job_manager::actor::{RunJob, StopWork};

/// Searches providers and writes the subtitle of one job.
pub struct Downloader {
    job: Job,
    context: Rc<WorkerContext>,
}

impl Downloader {
    /// A worker for `job`.
    pub fn new(job: Job, context: Rc<WorkerContext>) -> Self {
        Self { job, context }
    }
}

impl Actor for Downloader {
    type Context = Context<Self>;
}

impl Handler<RunJob> for Downloader {
    type Result = ResponseActFuture<Self, Outcome>;

    fn handle(&mut self, _: RunJob, _: &mut Self::Context) -> Self::Result {
        let (job, context) = (self.job.clone(), self.context.clone());
        Box::pin(
            download(job, context)
                .into_actor(self)
                .map(|outcome, _, ctx| {
                    ctx.stop();
                    outcome
                }),
        )
    }
}

impl Handler<StopWork> for Downloader {
    type Result = ();

    fn handle(&mut self, _: StopWork, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
