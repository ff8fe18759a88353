//! `[notify.email]`: one plain-text mail per notification over SMTP (lettre, rustls with
//! ring): STARTTLS (587), TLS from the first byte (465), or none (a relay on localhost).

use std::time::Duration;

use cuewarden_actors::clients::{LocalBoxFuture, Notifier, NotifyError};
use cuewarden_actors::notify::Notification;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{EmailNotify, SmtpSecurity};

/// The email target.
pub struct Email {
    config: EmailNotify,
    timeout: Duration,
}

impl Email {
    /// An email target; `timeout` bounds each SMTP command.
    pub fn new(config: EmailNotify, timeout: Duration) -> Self {
        Self { config, timeout }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
        let host = self.config.host.as_str();
        let builder = match self.config.security {
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(|e| NotifyError::Permanent(format!("cannot set up SMTP to {host}: {e}")))?;
        let mut builder = builder.port(self.config.port).timeout(Some(self.timeout));
        if let Some(password) = &self.config.password {
            builder = builder.credentials(Credentials::new(
                self.config.username.clone(),
                password.expose().to_owned(),
            ));
        }
        Ok(builder.build())
    }

    fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let address = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| NotifyError::Permanent(format!("{a:?} is not an address: {e}")))
        };
        let mut builder = Message::builder()
            .from(address(&self.config.from)?)
            .subject(n.title())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.config.to {
            builder = builder.to(address(to)?);
        }
        builder
            .body(format!("{}\n", n.body()))
            .map_err(|e| NotifyError::Permanent(format!("cannot build the mail: {e}")))
    }
}

impl Notifier for Email {
    fn name(&self) -> &str {
        "email"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let prepared = self.transport().and_then(|t| Ok((t, self.message(n)?)));
        Box::pin(async move {
            let (transport, message) = prepared?;
            match transport.send(message).await {
                Ok(_) => Ok(()),
                // 5xx: the server refused (bad credentials, unknown recipient).
                Err(err) if err.is_permanent() => {
                    Err(NotifyError::Permanent(format!("SMTP refused: {err}")))
                }
                Err(err) => Err(NotifyError::retry(format!("SMTP failed: {err}"))),
            }
        })
    }
}
