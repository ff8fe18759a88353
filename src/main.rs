//! The `cuewarden` binary: parse the command line, set up logging, run, print the error
//! chain once and pick the exit code (0 ok, 1 runtime error, 2 configuration error).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use cuewarden::cli::{Cli, Command, StoreCommand};
use cuewarden::config::{self, ConfigErrors};
use cuewarden::control::{self, Control};
use tracing_subscriber::EnvFilter;

/// Exit code for configuration problems.
const EXIT_CONFIG: u8 = 2;

/// What is logged when neither `CUEWARDEN_LOG` nor `RUST_LOG` says otherwise. actix-http
/// logs a client's malformed request (a duplicate `Content-Length`, invalid header bytes) at
/// ERROR: that is the client's problem, not the daemon's, so it is not logged by default
/// (`CUEWARDEN_LOG=info,actix_http=debug` shows it).
const DEFAULT_LOG: &str = "info,actix_http::h1::dispatcher=off";

fn init_tracing() {
    let filter = EnvFilter::try_from_env("CUEWARDEN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let colored = std::io::stderr().is_terminal();
    // A quoted path or message never splits or forges a log line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(cuewarden::logging::EscapeControls::new(
            std::io::stderr,
            colored,
        ))
        .with_ansi(colored);
    // journald timestamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Installs the SIGTERM/SIGINT handlers at once (before start-up, so an early signal is
/// not fatal) and returns the future that resolves on the first of them.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

fn settings(cli: &Cli) -> Result<config::Settings, ConfigErrors> {
    let path = config::locate(cli.config.as_deref());
    if path.is_none() {
        tracing::warn!("no config file found; running on built-in defaults");
    }
    config::load(path.as_deref())
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = match settings(&cli) {
        Ok(settings) => settings,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let cli_config = cli.config.clone();
    match cli.command {
        Command::CheckConfig => {
            let origin = settings
                .origin
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            for warning in settings.warnings() {
                eprintln!("warning: {warning}");
            }
            cuewarden::out!("{origin}: ok");
        }
        Command::Run => {
            let listener = listen(&settings)?;
            let address = listener.local_addr().ok();
            let ending = actix_rt::System::new().block_on(async move {
                cuewarden::run(settings, listener, shutdown_signal()?).await
            })?;
            if ending == cuewarden::app::Ending::RestartForDamage {
                restart_for_damage(address)?;
            }
        }
        Command::Request {
            path,
            languages,
            no_translate,
        } => {
            let control = Control::new(&settings)?;
            let path = std::path::absolute(&path).unwrap_or(path);
            let answer = client_runtime()?.block_on(control.request(
                &path.to_string_lossy(),
                &languages,
                no_translate.then_some(false),
            ))?;
            // The answer names the video by its real path, the jobs' key.
            let real = answer["path"]
                .as_str()
                .map_or_else(|| path.to_string_lossy().into_owned(), str::to_owned);
            control::print_jobs(
                answer["jobs"].as_array().map_or(&[], Vec::as_slice),
                Some(&real),
            );
        }
        Command::Jobs {
            status,
            limit,
            cursor,
        } => {
            let control = Control::new(&settings)?;
            let answer = client_runtime()?.block_on(control.jobs(
                status.as_deref(),
                usize::from(limit),
                cursor.as_deref(),
            ))?;
            control::print_jobs(answer["jobs"].as_array().map_or(&[], Vec::as_slice), None);
            if let Some(next) = answer["next_cursor"].as_str() {
                let status = status.map(|s| format!(" --status {s}")).unwrap_or_default();
                let config = cli_config
                    .as_deref()
                    .map(|p| format!(" --config {}", shell_quoted(&p.to_string_lossy())))
                    .unwrap_or_default();
                eprintln!("more: cuewarden jobs --limit {limit}{status} --cursor {next}{config}");
            }
        }
        Command::Scan { paths, json } => {
            let libraries = cuewarden::app::libraries_of(&settings);
            if paths.is_empty() && libraries.is_empty() {
                eprintln!("nothing to scan: no [[libraries]] in the config and no PATH given");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
            let starts: Vec<_> = paths
                .iter()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .collect();
            let format = if json {
                cuewarden::scan::Format::Json
            } else {
                cuewarden::scan::Format::Text
            };
            let is_complete =
                cuewarden::scan::run(&starts, libraries, &settings.languages.wanted, format)
                    .context("cannot print the scan report")?;
            if !is_complete {
                return Ok(ExitCode::FAILURE);
            }
        }
        // The check catches redb's panics on a damaged file itself.
        Command::Store { command } => {
            return cuewarden_actors::store::allow_unwind(|| store_command(&settings, command));
        }
        Command::Events { job_id } => {
            let control = Control::new(&settings)?;
            let answer = client_runtime()?.block_on(control.events(&job_id))?;
            control::print_events(answer["events"].as_array().map_or(&[], Vec::as_slice));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` as one shell word: bare when it is plain, single-quoted otherwise.
fn shell_quoted(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c));
    if plain && !text.is_empty() {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `cuewarden store check|backup|restore`: exit 0 done, 1 refused or failed (the reason on
/// stderr: damaged, in use by the daemon, …).
fn store_command(settings: &config::Settings, command: StoreCommand) -> anyhow::Result<ExitCode> {
    use cuewarden_actors::store::{self, StoreError};
    let data_dir = &settings.data_dir;
    let path = data_dir.join(store::STORE_FILE_NAME);
    let describe = |report: &store::CheckReport| {
        format!(
            "{} jobs ({} unfinished), {} events, schema {}, {:.1} MiB",
            report.jobs,
            report.unfinished_jobs,
            report.events,
            report
                .schema_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string()),
            report.bytes as f64 / 1_048_576.0
        )
    };
    let newest_snapshot = || {
        store::list_snapshots(data_dir).pop().map_or_else(
            || "there is no snapshot yet".to_owned(),
            |s| format!("the newest is {} (taken {})", s.path.display(), s.taken_at),
        )
    };
    let result = match &command {
        StoreCommand::Check => store::check_file(&path).map(|report| {
            cuewarden::out!("{}: ok: {}", path.display(), describe(&report));
        }),
        StoreCommand::Backup { path: dest } => {
            let dest = std::path::absolute(dest).unwrap_or_else(|_| dest.clone());
            if dest.exists() {
                eprintln!(
                    "error: {} exists: a backup never overwrites a file; name a new one",
                    dest.display()
                );
                return Ok(ExitCode::FAILURE);
            }
            store::backup(data_dir, &dest).map(|report| {
                cuewarden::out!(
                    "{}: backup of {}: {}",
                    dest.display(),
                    path.display(),
                    describe(&report)
                );
            })
        }
        StoreCommand::Restore { path: from } => store::restore(data_dir, from).map(|restored| {
            if let Some(replaced) = &restored.replaced {
                cuewarden::out!("{}: the replaced store is kept", replaced.display());
            }
            cuewarden::out!(
                "{}: restored from {}: {}",
                path.display(),
                from.display(),
                describe(&restored.report)
            );
        }),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("error: {}", store::error_chain(&err));
            match (&err, &command) {
                (StoreError::Locked { .. }, StoreCommand::Backup { .. }) => eprintln!(
                    "while the daemon runs, data_dir/snapshots/ holds consistent copies: {}",
                    newest_snapshot()
                ),
                (StoreError::Damaged { .. }, StoreCommand::Check) => eprintln!(
                    "the daemon restores the newest good snapshot at start ({}); or use \
                     `cuewarden store restore PATH`",
                    newest_snapshot()
                ),
                _ => {}
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Where a daemon that restarts itself for a damaged store listened, for its new image: the
/// same address even when the configuration says port 0.
const RESTART_LISTEN_VAR: &str = "CUEWARDEN_RESTART_LISTEN";

/// The daemon's listener: on `server.listen`, or after a restart for a damaged store on the
/// address the previous image listened on (falling back to `server.listen`).
fn listen(settings: &config::Settings) -> anyhow::Result<std::net::TcpListener> {
    let previous = std::env::var_os(cuewarden::app::RESTARTED_FOR_DAMAGE_VAR)
        .and(std::env::var(RESTART_LISTEN_VAR).ok())
        .and_then(|address| address.parse::<std::net::SocketAddr>().ok());
    if let Some(previous) = previous {
        match std::net::TcpListener::bind(previous) {
            Ok(listener) => return Ok(listener),
            Err(err) => {
                tracing::warn!(address = %previous, error = %err, "cannot listen where the daemon listened before its restart; using server.listen");
            }
        }
    }
    std::net::TcpListener::bind(settings.server.listen)
        .with_context(|| format!("cannot listen on {}", settings.server.listen))
}

/// Starts this binary again in this process (`exec`: the same process id, arguments and
/// environment, plus `env`). Returns only if that failed.
fn exec_self(env: &[(&str, std::ffi::OsString)]) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    // The running image itself, even when its file was replaced or removed since (a package
    // upgrade): the path it was started from may be gone.
    let proc_self = std::path::Path::new("/proc/self/exe");
    let exe = if proc_self.exists() {
        proc_self.to_path_buf()
    } else {
        match std::env::current_exe() {
            Ok(exe) => exe,
            Err(err) => return err,
        }
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.exec()
}

/// After [`Ending::RestartForDamage`](cuewarden::app::Ending): the daemon has stopped and
/// closed the store; the new image's start-up check restores the newest snapshot. Marked in
/// the environment, so that damage found again soon after is not restarted for in a loop.
fn restart_for_damage(address: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut env = vec![(
        cuewarden::app::RESTARTED_FOR_DAMAGE_VAR,
        now.to_string().into(),
    )];
    if let Some(address) = address {
        env.push((RESTART_LISTEN_VAR, address.to_string().into()));
    }
    tracing::error!("restarting in place for the damaged store");
    let err = exec_self(&env);
    anyhow::bail!(
        "cannot restart for the damaged store ({err}); exiting so the service manager restarts it"
    )
}

/// The panic hook, installed first: a panic is a bug and ends the process as it did under
/// `panic = "abort"` (the default hook's message, then `abort`: systemd restarts it),
/// except inside a store guard (a redb panic on a page damaged while the daemon runs),
/// where it is logged and unwinds to the guard, which marks the store damaged.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if cuewarden_actors::store::in_store_guard() {
            // Every read that reaches a bad page panics: the first few are logged at ERROR,
            // on one line each, the rest at DEBUG (the damage itself is said once, loudly).
            static LOGGED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed");
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            let location = info.location().map(ToString::to_string).unwrap_or_default();
            if LOGGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                tracing::error!(
                    thread,
                    panic = message,
                    location,
                    "redb panicked inside the store guard: the store is damaged"
                );
            } else {
                tracing::debug!(thread, panic = message, location, "redb panicked again");
            }
            return;
        }
        default(info);
        std::process::abort();
    }));
}

/// How glibc's malloc runs the daemon when its environment does not say, as (variable,
/// value, the `GLIBC_TUNABLES` name that says it too):
/// - 2 arenas: glibc's default (8 per core) keeps what a burst of requests grew in each
///   thread's arena resident for good (README, Performance: 28 MB idle → 56 MB after 500
///   replaying event streams, against 15 MB → 28 MB with 2).
/// - A fixed trim threshold (glibc's initial 128 KiB): by default glibc raises it, and the
///   size above which it maps a block of its own, to the largest block freed so far, so
///   after the start (a few MiB of job heads) or a burst the freed memory stays with the
///   process (measured: 39 MB idle with 100,000 waiting jobs, 30 MB with it fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MALLOC_TUNING: [(&str, &str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2", "malloc.arena_max"),
    ("MALLOC_TRIM_THRESHOLD_", "131072", "malloc.trim_threshold"),
];

/// `cuewarden run` whose environment does not set [`MALLOC_TUNING`] (by its variables or a
/// glibc tunable) execs itself again with what is missing: glibc reads them only when the
/// process starts, and the daemon may not call `mallopt`. Nothing has started yet (no
/// thread, no file open but the standard ones); the process keeps its id, so systemd and
/// `kill -9` see no difference. A failed exec leaves the daemon running with glibc's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas(cli: &Cli) {
    if !matches!(cli.command, Command::Run) {
        return;
    }
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let missing: Vec<(&str, std::ffi::OsString)> = MALLOC_TUNING
        .iter()
        .filter(|(var, _, tunable)| std::env::var_os(var).is_none() && !tunables.contains(tunable))
        .map(|(var, value, _)| (*var, (*value).into()))
        .collect();
    if missing.is_empty() {
        return;
    }
    let err = exec_self(&missing);
    eprintln!(
        "warning: cannot restart with glibc's malloc tuned ({err}); running with its default"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas(_: &Cli) {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    limit_malloc_arenas(&cli);
    init_tracing();
    install_panic_hook();
    // reqwest is built with `rustls-no-provider`: choose ring before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match real_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::process::ExitStatusExt as _;

    /// Set in the child that [`the_panic_hook_aborts_outside_the_store_guard_only`] runs.
    const CHILD: &str = "CUEWARDEN_PANIC_HOOK_CHILD";

    /// The hook is process-wide: the test runs itself again in a child process, which
    /// installs it, panics inside a guard (caught, the child goes on), then outside one.
    #[test]
    fn the_panic_hook_aborts_outside_the_store_guard_only() {
        if std::env::var_os(CHILD).is_some() {
            super::install_panic_hook();
            let caught = cuewarden_actors::store::allow_unwind(|| {
                std::panic::catch_unwind(|| panic!("a redb panic on a damaged page"))
            });
            assert!(caught.is_err());
            println!("caught inside the guard");
            panic!("a bug outside the guard");
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::the_panic_hook_aborts_outside_the_store_guard_only",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stdout.contains("caught inside the guard"),
            "{stdout}{stderr}"
        );
        // SIGABRT, as under `panic = "abort"`: not the test harness's failure exit.
        assert_eq!(output.status.signal(), Some(6), "{stdout}{stderr}");
        // The default hook's message for the bug; none for the guarded panic (the hook
        // logs that one through tracing, not set up in the child).
        assert!(stderr.contains("a bug outside the guard"), "{stderr}");
        assert!(
            !stderr.contains("a redb panic on a damaged page"),
            "{stderr}"
        );
    }
}
