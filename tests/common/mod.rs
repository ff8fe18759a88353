//! The daemon for black-box tests: temp data dir and library, port 0, an HTTP client.
//!
//! [`Sandbox::serve`] runs it in-process (mini-redis style: `app::run_with` on its own actix
//! `System` thread, a listener bound here, a shutdown future we own): fast, for API
//! behaviour. [`Sandbox::start`] runs the real binary (the daemon logs the address it got),
//! for what only a process shows: signals, exit codes, `kill -9`, logs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod jellyfin;
pub mod loopback;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// As an environment value for [`Daemon::start`]: remove the variable (no real value holds
/// a NUL byte).
pub const UNSET: &str = "\u{0}";

/// The API key every test daemon uses.
pub const KEY: &str = "test-key-0123456789abcdef";

/// How long a test waits for the daemon to do something it should do quickly.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cuewarden")
}

/// A temp dir with `library/` and `data/`, and a config pointing at them.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    /// `extra_config` is appended; the watcher and the library sync are off unless it has
    /// a `[watcher]` / `[library_sync]` section of its own.
    pub fn new(extra_config: &str) -> Self {
        let mut extra_config = extra_config.to_owned();
        for section in ["[watcher]", "[library_sync]"] {
            if !extra_config.contains(section) {
                extra_config.push_str(&format!("\n{section}\nenabled = false\n"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("library")).unwrap();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\napi_key = \"{KEY}\"\nshutdown_grace_secs = 5\n\
             [storage]\ndata_dir = {:?}\n\
             [languages]\nwanted = [\"fr\", \"en\"]\ntranslate_from = []\n\
             [[libraries]]\npath = {:?}\n{extra_config}",
            dir.path().join("data").display().to_string(),
            dir.path().join("library").display().to_string(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn library(&self) -> PathBuf {
        self.dir.path().join("library")
    }

    /// Creates an (empty) video file in the library and returns its path.
    pub fn video(&self, relative: &str) -> PathBuf {
        let path = self.library().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"not really a video").unwrap();
        path
    }

    pub fn start(&self) -> Daemon {
        Daemon::start(&self.config(), &[])
    }

    /// The daemon in this process, on port 0.
    pub fn serve(&self) -> Served {
        Served::start(&self.config())
    }
}

/// An HTTP client for a daemon at `base`, with blocking helpers.
pub struct Api {
    pub base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn new(base: String) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .timeout(DEADLINE)
            // The daemon closes a connection idle for 5 s (actix-web's keep-alive); reusing
            // one just then fails with IncompleteMessage, so idle ones are not reused.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        Self {
            base,
            client,
            runtime,
        }
    }

    /// Sends a request; returns status and JSON body (Null when not JSON).
    pub fn call(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.runtime.block_on(async {
            let response = request.send().await.expect("request failed");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call(
            self.client
                .get(format!("{}{path}", self.base))
                .header("X-Api-Key", KEY),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(
            self.client
                .post(format!("{}{path}", self.base))
                .header("X-Api-Key", KEY)
                .json(body),
        )
    }

    pub fn raw(&self) -> (&reqwest::Client, &tokio::runtime::Runtime) {
        (&self.client, &self.runtime)
    }

    /// Every job id the daemon lists, newest first, through every page.
    pub fn all_job_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = self.get(&format!("/api/v1/jobs?limit=500&cursor={cursor}"));
            assert_eq!(status, 200, "{page}");
            ids.extend(
                page["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| j["id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return ids,
            }
        }
    }

    /// Asserts `/health` answers 200 `degraded` with a reason containing `reason`.
    pub fn assert_degraded(&self, reason: &str) {
        let (status, health) = self.get("/health");
        assert_eq!(status, 200, "/health stays a liveness answer: {health}");
        assert_eq!(health["status"], "degraded", "{health}");
        assert!(
            health["reason"].as_str().unwrap_or("").contains(reason),
            "{health}"
        );
    }

    /// Polls a job until `predicate` holds.
    pub fn wait_for_job(&self, id: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, job) = self.get(&format!("/api/v1/jobs/{id}"));
            assert_eq!(status, 200, "{job}");
            if predicate(&job) {
                return job;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "job never reached the expected state: {job}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The daemon running in this process; stopped (cleanly) when dropped.
pub struct Served {
    api: Api,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Served {
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, |_| {})
    }

    /// The daemon with the components its settings enable, changed by `edit` (run on the
    /// daemon's thread, where the components live).
    pub fn start_with(
        config: &Path,
        edit: impl FnOnce(&mut cuewarden::app::Components) + Send + 'static,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = cuewarden::config::load(Some(config)).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut components = cuewarden::app::Components::from_settings(&settings)?;
                edit(&mut components);
                cuewarden::app::run_with(settings, components, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let served = Self {
            api: Api::new(format!("http://{address}")),
            stop: Some(stop),
            thread: Some(thread),
        };
        // The listener is bound already; wait until the daemon answers on it.
        let start = Instant::now();
        while served.try_health().is_none() {
            assert!(
                start.elapsed() < DEADLINE,
                "in-process daemon never answered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        served
    }

    fn try_health(&self) -> Option<u16> {
        let url = format!("{}/health", self.api.base);
        self.api
            .runtime
            .block_on(async { self.api.client.get(url).send().await.ok() })
            .map(|response| response.status().as_u16())
    }

    /// Stops the daemon the way SIGTERM would and returns how `run` ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for Served {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// A running daemon.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    api: Api,
}

impl std::ops::Deref for Daemon {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Daemon {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_under(&[], config, env)
    }

    /// The daemon started by `wrapper` (`["setpriv", …, "--"]`), or directly when empty.
    pub fn start_under(wrapper: &[&str], config: &Path, env: &[(&str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .args(["run", "--config"])
            .arg(config)
            .env("CUEWARDEN_LOG", "info")
            .env_remove("CUEWARDEN_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            // UNSET removes the variable: the daemon's own default applies.
            if *value == UNSET {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command.spawn().expect("cannot start cuewarden");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address_receiver) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line
                    .split("address=")
                    .nth(1)
                    .filter(|_| line.contains("listening"))
                {
                    let _ = address_sender
                        .send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = match address_receiver.recv_timeout(DEADLINE) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "daemon did not start listening; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            log,
            api: Api::new(format!("http://{address}")),
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.stop_with("-TERM")
    }

    /// SIGINT (Ctrl-C), then wait for the exit.
    pub fn interrupt(self) -> (ExitStatus, String) {
        self.stop_with("-INT")
    }

    /// Sends `signal` to the process now, without waiting.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Sends `signal` (`-TERM`), then waits for the exit.
    pub fn stop_with(self, signal: &str) -> (ExitStatus, String) {
        self.signal(signal);
        self.wait()
    }

    /// Waits for the process to exit (after a signal sent with [`signal`](Self::signal)).
    pub fn wait(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.log_text());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "daemon ignored SIGTERM; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn crash(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
