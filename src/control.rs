//! The CLI side of `request`, `jobs` and `events`: a small client of the running daemon's
//! API, using `server.listen` and the API key from the config (or from `data_dir`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::app::API_KEY_FILE;
use crate::config::Settings;

/// A client of the daemon's API.
pub struct Control {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port())
        }
        _ => address,
    }
}

impl Control {
    /// A client for the daemon the config describes.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let api_key = match &settings.server.api_key {
            Some(key) => key.expose().to_owned(),
            None => {
                let path = settings.data_dir.join(API_KEY_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no server.api_key in the config and cannot read {}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        Ok(Self {
            http: crate::clients::http_client()?,
            base: format!("http://{}/api/v1", reachable(settings.server.listen)),
            api_key,
        })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .header("X-Api-Key", &self.api_key)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the daemon at {} (is `cuewarden run` running?)",
                    self.base
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no details");
            bail!("the daemon answered {status}: {message}");
        }
        Ok(body)
    }

    /// `POST /subtitles`.
    pub async fn request(
        &self,
        path: &str,
        languages: &[String],
        auto_translate: Option<bool>,
    ) -> anyhow::Result<Value> {
        let mut body = json!({ "path": path });
        if !languages.is_empty() {
            body["languages"] = json!(languages);
        }
        if let Some(flag) = auto_translate {
            body["auto_translate"] = json!(flag);
        }
        self.call(
            self.http
                .post(format!("{}/subtitles", self.base))
                .json(&body),
        )
        .await
    }

    /// `GET /jobs`.
    pub async fn jobs(
        &self,
        status: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut url = url::Url::parse(&format!("{}/jobs", self.base))?;
        url.query_pairs_mut()
            .append_pair("limit", &limit.to_string());
        if let Some(status) = status {
            url.query_pairs_mut().append_pair("status", status);
        }
        if let Some(cursor) = cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        self.call(self.http.get(url)).await
    }

    /// `GET /jobs/{id}/events`.
    pub async fn events(&self, job_id: &str) -> anyhow::Result<Value> {
        self.call(self.http.get(format!("{}/jobs/{job_id}/events", self.base)))
            .await
    }
}

/// `text` with control characters escaped, so a file name cannot drive the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Ends the process after a failed write to stdout: quietly (0) when the reader closed the
/// pipe, else with the error (1).
pub fn stdout_failed(err: &std::io::Error) -> ! {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {err}");
    std::process::exit(1);
}

/// Prints jobs as a table; `path` fills the column for answers that do not carry one.
pub fn print_jobs(jobs: &[Value], path: Option<&str>) {
    crate::out!("{:<36}  {:<21}  {:<6}  PATH", "ID", "STATUS", "LANG");
    for job in jobs {
        let detail = job["error"]
            .as_str()
            .map(|e| format!("  ({})", printable(e)))
            .unwrap_or_default();
        crate::out!(
            "{:<36}  {:<21}  {:<6}  {}{detail}",
            job["id"].as_str().unwrap_or("?"),
            job["status"].as_str().unwrap_or("?"),
            job["language"].as_str().unwrap_or("?"),
            printable(job["path"].as_str().or(path).unwrap_or("")),
        );
    }
}

/// Prints events as a table under a header.
pub fn print_events(events: &[Value]) {
    crate::out!(
        "{:>6}  {:<24}  {:<28}  {:<12}  PAYLOAD",
        "SEQ",
        "AT",
        "TYPE",
        "SOURCE"
    );
    for event in events {
        crate::out!(
            "{:>6}  {:<24}  {:<28}  {:<12}  {}",
            event["seq"]
                .as_u64()
                .map_or("?".to_owned(), |seq| seq.to_string()),
            event["at"].as_str().unwrap_or("?"),
            event["type"].as_str().unwrap_or("?"),
            event["source"].as_str().unwrap_or("?"),
            printable(&event["payload"].to_string())
        );
    }
}
