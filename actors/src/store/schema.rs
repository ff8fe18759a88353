//! Every redb table of the store, with the encoding of its records.
//!
//! Values are one version byte followed by JSON. A reader refuses a version it does not
//! know instead of guessing; a migration on open rewrites old versions (none exist yet).

use redb::TableDefinition;

/// The schema version this build writes. Bumped with a migration in `Store::open`.
pub const SCHEMA_VERSION: u32 = 1;

/// The record encoding version this build writes.
pub const RECORD_VERSION: u8 = 1;

/// Key-value metadata: schema version, event sequence, generated API key.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Jobs by id (UUIDv7 as u128, so iteration is creation order).
pub const JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("jobs");
/// Index: (status code, job id) → (), for resume and filtered listing.
pub const JOBS_BY_STATUS: TableDefinition<(u8, u128), ()> = TableDefinition::new("jobs_by_status");
/// The global event log by sequence number.
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Index: (job id, event seq) → (), the per-job event log.
pub const JOB_EVENTS: TableDefinition<(u128, u64), ()> = TableDefinition::new("job_events");
/// The media index: video path → what we know of it.
pub const MEDIA: TableDefinition<&str, &[u8]> = TableDefinition::new("media");
/// Provider state (cooldowns, quotas) by provider name.
pub const PROVIDER_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("provider_state");
/// Small named state of the daemon's parts (a source's session token and device id, how far
/// it has caught up, the last library sync, …): key → one record (version byte + JSON),
/// written with `Change::PutState`, read with `Store::state` / `Store::state_as`.
pub const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// Work for external sinks (notifiers, bridges), by sequence number, until acknowledged.
pub const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");

/// The translation cache: `service \u{1f} from \u{1f} to \u{1f} text sent` → the
/// service's answer (a record: version byte + JSON string), so the same line is never paid
/// for twice, across jobs and restarts. Written with `Change::PutTranslations`.
pub const TRANSLATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("translations");
/// When each cached translation was last used (written or found): the key of
/// [`TRANSLATIONS`] → the UTC day (days since the Unix epoch). The `cleanup` task deletes
/// the entries not used for `[translator] cache_days`; an entry without a day (written by
/// an earlier build) is given the day of the cleanup that finds it.
pub const TRANSLATIONS_USED: TableDefinition<&str, u32> = TableDefinition::new("translations_used");

/// Subtitle files the Translator wrote, by path: they rank below any human subtitle.
pub const MACHINE_TRANSLATED: TableDefinition<&str, &[u8]> =
    TableDefinition::new("machine_translated");
/// What produced each job's written subtitle (provenance), by job id.
pub const SUBTITLES: TableDefinition<u128, &[u8]> = TableDefinition::new("subtitles");
/// Subtitles users rejected: `<video path>\0<provider>\0<candidate id>` → entry.
pub const BLACKLIST: TableDefinition<&str, &[u8]> = TableDefinition::new("blacklist");

/// Meta key of the schema version (u32, little endian).
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Meta key of the next event sequence number (u64, little endian).
pub const META_NEXT_EVENT_SEQ: &str = "next_event_seq";
/// Meta key of the next outbox sequence number (u64, little endian).
pub const META_NEXT_OUTBOX_SEQ: &str = "next_outbox_seq";
