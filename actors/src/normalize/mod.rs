//! Normalisation: from the bytes a provider sent to the text cuewarden writes.
//!
//! [`normalize`] unpacks a ZIP ([`archive`]: the entry for the video's episode, bombs and
//! path traversal refused), detects the character encoding ([`encoding`]: BOM, strict
//! UTF-8, the language's legacy code pages, `chardetng`) and parses the text
//! ([`formats`]: SRT, WebVTT, ASS/SSA). What comes out is UTF-8 without BOM with `\n` line
//! endings, in the format that is written (SRT, or ASS/SSA kept as such), or an error that
//! says why the candidate is unusable, so the Downloader tries the next one.

pub mod archive;
pub mod encoding;
pub mod formats;

use std::path::Path;

use crate::language::Language;

pub use archive::ArchiveError;
pub use encoding::EncodingError;
pub use formats::{FormatError, InputFormat, OutputFormat};

/// A subtitle ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The text: UTF-8, no BOM, `\n` line endings.
    pub text: String,
    /// The format written (decides the extension).
    pub output: OutputFormat,
    /// The format received.
    pub input: InputFormat,
    /// The encoding the bytes were read as.
    pub encoding: &'static str,
    /// The archive entry it came from, if it came in an archive.
    pub archive_entry: Option<String>,
    /// Cues (or ASS dialogue lines).
    pub cues: usize,
}

/// Why downloaded bytes are not a usable subtitle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// Nothing was sent.
    #[error("empty download")]
    Empty,
    /// The archive was refused or holds nothing usable.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The bytes are not text in any encoding tried.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// The text is not a subtitle that parses.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Turns downloaded `bytes` into the subtitle written for `video` in `language`.
pub fn normalize(
    bytes: &[u8],
    video: &Path,
    language: &Language,
) -> Result<Normalized, NormalizeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(NormalizeError::Empty);
    }
    if let Some(kind) = archive::other_archive(bytes) {
        return Err(ArchiveError::Unsupported(kind).into());
    }
    let (bytes, archive_entry) = if archive::is_zip(bytes) {
        let extracted = archive::extract(bytes, video, language)?;
        (
            std::borrow::Cow::Owned(extracted.bytes),
            Some(extracted.name),
        )
    } else {
        (std::borrow::Cow::Borrowed(bytes), None)
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(NormalizeError::Empty);
    }
    let decoded = encoding::decode(&bytes, language)?;
    let parsed = formats::parse(&decoded.text)?;
    Ok(Normalized {
        text: parsed.text,
        output: parsed.output,
        input: parsed.input,
        encoding: decoded.encoding,
        archive_entry,
        cues: parsed.cues,
    })
}

#[cfg(test)]
mod tests;
