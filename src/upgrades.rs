//! The upgrade pass as the scheduler (and tests) call it: [`UpgradeTrigger::run`] asks the
//! JobManager for one pass ([`RunUpgrades`]) and answers its [`UpgradeCounts`]. The trigger
//! is cheap to clone and `Send`; the requests are served on the actix thread once the
//! JobManager runs ([`UpgradeRequests::serve`], in `app::run_with`).

use actix::Addr;
use cuewarden_actors::job_manager::{JobManager, RunUpgrades, UpgradeCounts};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

/// Asks the running daemon for an upgrade pass.
#[derive(Debug, Clone)]
pub struct UpgradeTrigger(mpsc::UnboundedSender<oneshot::Sender<UpgradeCounts>>);

/// The other end of an [`UpgradeTrigger`]: the requests, until served.
#[derive(Debug)]
pub struct UpgradeRequests(mpsc::UnboundedReceiver<oneshot::Sender<UpgradeCounts>>);

/// A trigger and the requests it sends.
pub fn channel() -> (UpgradeTrigger, UpgradeRequests) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (UpgradeTrigger(sender), UpgradeRequests(receiver))
}

impl UpgradeTrigger {
    /// Asks for a pass; the counts come back on the receiver (`blocking_recv` outside a
    /// runtime). A daemon that is not running drops the sender: the receiver errs.
    pub fn request(&self) -> oneshot::Receiver<UpgradeCounts> {
        let (reply, answer) = oneshot::channel();
        let _ = self.0.send(reply);
        answer
    }

    /// Runs one pass and answers its counts (`ran: false`: a pass was already running,
    /// or the daemon is not running / shutting down).
    pub async fn run(&self) -> UpgradeCounts {
        self.request().await.unwrap_or_default()
    }
}

impl UpgradeRequests {
    /// Serves the requests with `manager`, one pass at a time (on the current arbiter).
    pub fn serve(mut self, manager: Addr<JobManager>) {
        actix::spawn(async move {
            while let Some(reply) = self.0.recv().await {
                let counts = match manager.send(RunUpgrades).await {
                    Ok(counts) => counts,
                    Err(err) => {
                        warn!(error = %err, "the upgrade pass got no answer");
                        UpgradeCounts::default()
                    }
                };
                let _ = reply.send(counts);
            }
        });
    }
}
