//! The command line (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keeps every wanted subtitle language next to your movies and episodes.
#[derive(Debug, Parser)]
#[command(name = "cuewarden", version, about)]
pub struct Cli {
    /// The config file (default: $CUEWARDEN_CONFIG, ./config.toml, /etc/cuewarden/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (systemd runs this).
    Run,
    /// Validate the configuration: exit 0, or exit 2 naming every bad key.
    CheckConfig,
    /// Walk the libraries (or the given folders) once and list every video missing a wanted
    /// language, sorted by path; read-only, without the daemon.
    Scan {
        /// Folders or videos to scan (default: every `[[libraries]]` path).
        paths: Vec<PathBuf>,
        /// Print one JSON report on stdout instead of lines: `videos`, per-language
        /// `missing` counts, `items`, `unreadable`, `outside`.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running daemon for subtitles.
    Request {
        /// The video, as this daemon sees it.
        path: PathBuf,
        /// Languages: ISO 639-1 or 639-2 codes, with a region where it matters (`--lang fr de`,
        /// `--lang fr,pt-BR`, `--lang fre`); default: the video's library's `languages`, else
        /// `[languages] wanted`.
        #[arg(long = "lang", num_args = 1.., value_delimiter = ',', value_parser = language)]
        languages: Vec<String>,
        /// Do not machine-translate when no subtitle exists.
        #[arg(long)]
        no_translate: bool,
    },
    /// List the running daemon's jobs, newest first.
    Jobs {
        /// Only jobs with this status.
        #[arg(long, value_parser = status)]
        status: Option<String>,
        /// How many (1–500).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        /// Continue after a previous page (the cursor it printed).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a job's events, newest first.
    Events {
        /// The job id, or at least 4 characters of its start or its end (the last 8, as the
        /// web page shows them, tell jobs apart).
        job_id: String,
    },
    /// Check, back up or restore the store (`data_dir/cuewarden.redb`).
    Store {
        /// What to do with it.
        #[command(subcommand)]
        command: StoreCommand,
    },
}

/// `cuewarden store …`: the store file, without the daemon.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Check the store without writing to it: exit 0 if it is sound, 1 saying what is wrong.
    /// Works with the daemon stopped (a running daemon holds the file locked).
    Check,
    /// Write a consistent, checked copy of the store to PATH (which must not exist). Stop the
    /// daemon first; while it runs, `data_dir/snapshots/` holds its recent snapshots.
    Backup {
        /// Where to write the copy.
        path: PathBuf,
    },
    /// Replace the store by the backup at PATH, once it checks sound; the replaced file is
    /// kept as `cuewarden.redb.replaced-<time>`. Stop the daemon first.
    Restore {
        /// The backup (or snapshot) to restore.
        path: PathBuf,
    },
}

/// A language code, as the API will accept it, in its canonical form.
fn language(raw: &str) -> Result<String, String> {
    cuewarden_actors::Language::parse(raw)
        .map(|l| l.as_str().to_owned())
        .map_err(|err| err.to_string())
}

/// A job status name.
fn status(raw: &str) -> Result<String, String> {
    use cuewarden_actors::job::ALL_STATUSES;
    if ALL_STATUSES.iter().any(|s| s.as_str() == raw) {
        Ok(raw.to_owned())
    } else {
        let names: Vec<&str> = ALL_STATUSES.iter().map(|s| s.as_str()).collect();
        Err(format!("not a status; one of {}", names.join(", ")))
    }
}
