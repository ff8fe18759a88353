//! cuewarden's core: the job engine.
//!
//! Sources (in the root crate) turn what they see into [`job_manager::RequestSubtitles`]
//! messages. The [`job_manager::JobManager`] actor owns every job: it deduplicates, queues
//! by priority, persists each transition in the [`store::Store`] before acting on it, and
//! runs one [`worker::Worker`] actor per running job: a [`downloader::Downloader`] or a
//! [`translator::Translator`].
//! Remote services sit behind the small traits of [`clients`]. This crate knows nothing of
//! HTTP servers, file watching or the command line.
#![warn(missing_docs)]

pub mod clients;
pub mod downloader;
pub mod event;
pub mod files;
pub mod hash;
pub mod job;
pub mod job_manager;
pub mod language;
pub mod library;
pub mod normalize;
pub mod notify;
pub mod provenance;
pub mod refresh;
pub mod scoring;
pub mod store;
pub mod subtitle;
pub mod time;
pub mod translator;
pub mod walk;
pub mod worker;

pub use event::Event;
pub use job::{EventSource, Job, JobId, JobStatus, Language, MediaItem, Priority};
pub use library::{Libraries, Library};
pub use store::{Store, StoreError};
