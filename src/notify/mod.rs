//! Notification targets: one [`Notifier`] per `[notify.NAME]` section, over HTTP (Discord,
//! ntfy, Gotify, Pushover, Apprise, Kodi, Plex) or SMTP (email). The core's
//! [`cuewarden_actors::notify`] decides when each is told; these only speak the protocols.
//! No secret (token, password, webhook URL) ever reaches an error message or the log:
//! request errors are reported without their URL.

pub mod email;
pub mod http;

use std::rc::Rc;

use cuewarden_actors::clients::Notifier;
use cuewarden_actors::notify::NotifyTarget;

use crate::config::{NotifySettings, TargetRules};

/// The enabled targets of `settings`, each with its rules. `[notify.jellyfin]` is not one:
/// the writer refreshes Jellyfin itself after each write (`refresh`).
pub fn targets(settings: &NotifySettings, http: &reqwest::Client) -> Vec<NotifyTarget> {
    let mut out = Vec::new();
    let mut push = |rules: &TargetRules, notifier: Rc<dyn Notifier>| {
        if rules.enabled {
            out.push(NotifyTarget {
                notifier,
                on: rules.on.clone(),
                digest: rules.digest,
            });
        }
    };
    if let Some(t) = &settings.apprise {
        push(
            &t.rules,
            Rc::new(http::Apprise::new(http.clone(), t.clone())),
        );
    }
    if let Some(t) = &settings.discord {
        push(
            &t.rules,
            Rc::new(http::Discord::new(http.clone(), t.clone())),
        );
    }
    if let Some(t) = &settings.email {
        let timeout = settings.limits.timeout;
        push(&t.rules, Rc::new(email::Email::new(t.clone(), timeout)));
    }
    if let Some(t) = &settings.gotify {
        push(
            &t.rules,
            Rc::new(http::Gotify::new(http.clone(), t.clone())),
        );
    }
    if let Some(t) = &settings.kodi {
        push(&t.rules, Rc::new(http::Kodi::new(http.clone(), t.clone())));
    }
    if let Some(t) = &settings.ntfy {
        push(&t.rules, Rc::new(http::Ntfy::new(http.clone(), t.clone())));
    }
    if let Some(t) = &settings.plex {
        push(&t.rules, Rc::new(http::Plex::new(http.clone(), t.clone())));
    }
    if let Some(t) = &settings.pushover {
        push(
            &t.rules,
            Rc::new(http::Pushover::new(http.clone(), t.clone())),
        );
    }
    out
}
