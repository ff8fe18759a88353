//! `[server]`: where the API listens, its key, its limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;
use super::file::RawSection;
use super::values::Check;

/// `[server]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSection {
    pub listen: String,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
    pub max_event_streams: usize,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6880".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            max_body_bytes: 256 * 1024,
            shutdown_grace_secs: 10,
            max_event_streams: 64,
        }
    }
}

impl RawSection for ServerSection {}

/// Fewest characters an API key may have.
pub const MIN_API_KEY_CHARS: usize = 16;

/// Why `key` is no API key for a daemon whose page is reachable from a browser: too short
/// to resist guessing, or with whitespace (a paste that took a space or a line with it).
/// The key itself is never part of the message.
fn weak_key_problem(key: &str) -> Option<String> {
    let count = key.chars().count();
    let chars = format!("{count} character{}", if count == 1 { "" } else { "s" });
    if key.chars().any(char::is_whitespace) {
        Some(format!(
            "the key ({chars}) contains whitespace; use at least {MIN_API_KEY_CHARS} characters without spaces, or leave it empty to have one generated"
        ))
    } else if count < MIN_API_KEY_CHARS {
        Some(format!(
            "the key has {chars}; use at least {MIN_API_KEY_CHARS}, or leave it empty to have one generated"
        ))
    } else {
        None
    }
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The API key; `None`: generated on first start and kept in `data_dir`.
    pub api_key: Option<Secret>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long in-flight jobs may take to checkpoint on shutdown.
    pub shutdown_grace: Duration,
    /// Most `/events/stream` clients at once.
    pub max_event_streams: usize,
}

impl ServerSettings {
    /// Checks `[server]`; `None` if the address is unusable.
    pub(crate) fn with_config(server: ServerSection, check: &mut Check) -> Option<Self> {
        let listen = server
            .listen
            .parse::<SocketAddr>()
            .map_err(|err| {
                check.add(
                    "server.listen",
                    format!("{:?} is not an address:port ({err})", server.listen),
                )
            })
            .ok();
        let api_key = check.secret(
            &server.api_key,
            server.api_key_file.as_deref(),
            "server.api_key",
        );
        if let Some(key) = &api_key {
            let name = if server.api_key_file.is_some() {
                "server.api_key_file"
            } else {
                "server.api_key"
            };
            if let Some(problem) = weak_key_problem(key.expose()) {
                check.add(name, problem);
            }
        }
        if server.max_body_bytes < 1024 {
            check.add(
                "server.max_body_bytes",
                format!("{} is too small (at least 1024)", server.max_body_bytes),
            );
        }
        check.at_least_one(
            u64::try_from(server.max_event_streams).unwrap_or(u64::MAX),
            "server.max_event_streams",
        );
        Some(Self {
            listen: listen?,
            api_key,
            max_body_bytes: server.max_body_bytes,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            max_event_streams: server.max_event_streams,
        })
    }
}
