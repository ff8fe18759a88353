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
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6880".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            max_body_bytes: 256 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

impl RawSection for ServerSection {}

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
        if server.max_body_bytes < 1024 {
            check.add(
                "server.max_body_bytes",
                format!("{} is too small (at least 1024)", server.max_body_bytes),
            );
        }
        Some(Self {
            listen: listen?,
            api_key,
            max_body_bytes: server.max_body_bytes,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        })
    }
}
