//! The OpenSubtitles movie hash ("OSHash"): the file size plus the sum of the little-endian
//! 64-bit words of its first and last 64 KiB, wrapping mod 2^64, as 16 lower-case hex
//! digits. Files under 128 KiB have no hash (their windows would overlap; providers do not
//! index them).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes in each of the two windows hashed.
pub const WINDOW: u64 = 65_536;

/// The movie hash of the file at `path`, or `None` when it is smaller than two windows.
/// Reads 128 KiB (blocking).
pub fn movie_hash(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size < 2 * WINDOW {
        return Ok(None);
    }
    let mut buffer = vec![0u8; usize::try_from(WINDOW).unwrap_or(65_536)];
    file.read_exact(&mut buffer)?;
    let mut hash = size.wrapping_add(sum_words(&buffer));
    file.seek(SeekFrom::Start(size - WINDOW))?;
    file.read_exact(&mut buffer)?;
    hash = hash.wrapping_add(sum_words(&buffer));
    Ok(Some(format_hash(hash)))
}

/// The hash of an in-memory file (what [`movie_hash`] computes), `None` below 128 KiB.
pub fn movie_hash_of(bytes: &[u8]) -> Option<String> {
    let size = bytes.len() as u64;
    if size < 2 * WINDOW {
        return None;
    }
    let window = usize::try_from(WINDOW).unwrap_or(65_536);
    let head = sum_words(&bytes[..window]);
    let tail = sum_words(&bytes[bytes.len() - window..]);
    Some(format_hash(size.wrapping_add(head).wrapping_add(tail)))
}

fn sum_words(window: &[u8]) -> u64 {
    window.chunks_exact(8).fold(0u64, |sum, word| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        sum.wrapping_add(u64::from_le_bytes(bytes))
    })
}

fn format_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/fixtures/oshash_vectors.json")).unwrap()
    }

    fn synthetic(name: &str) -> Vec<u8> {
        match name {
            "zeros_128k" => vec![0u8; 131_072],
            "ff_128k_overflow" => vec![0xFFu8; 131_072],
            other => panic!("unknown synthetic vector {other}"),
        }
    }

    #[test]
    fn synthetic_vectors_match_on_disk_and_in_memory() {
        let vectors = vectors();
        let list = vectors["synthetic_vectors"].as_array().unwrap();
        assert!(!list.is_empty());
        let dir = tempfile::tempdir().unwrap();
        for vector in list {
            let name = vector["name"].as_str().unwrap();
            let bytes = synthetic(name);
            assert_eq!(bytes.len() as u64, vector["size"].as_u64().unwrap());
            let expected = vector["expected_hash"].as_str().unwrap();
            assert_eq!(movie_hash_of(&bytes).as_deref(), Some(expected), "{name}");
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                movie_hash(&path).unwrap().as_deref(),
                Some(expected),
                "{name}"
            );
        }
    }

    /// The canonical vectors' files are too big to ship; what they pin down is the format:
    /// 16 lower-case hex digits, zero-padded.
    #[test]
    fn canonical_vectors_have_the_format_we_print() {
        let vectors = vectors();
        for vector in vectors["canonical_vectors"].as_array().unwrap() {
            let expected = vector["expected_hash"].as_str().unwrap();
            let parsed = u64::from_str_radix(expected, 16).unwrap();
            assert_eq!(format_hash(parsed), expected);
        }
        assert_eq!(format_hash(0x20000), "0000000000020000");
    }

    #[test]
    fn an_unaligned_tail_window_is_read_from_size_minus_64k() {
        // 131 075 bytes: the tail starts at offset 65 539, not on a word boundary.
        let bytes: Vec<u8> = (0..131_075u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut expected = bytes.len() as u64;
        for start in [0usize, bytes.len() - 65_536] {
            for word in bytes[start..start + 65_536].chunks_exact(8) {
                expected = expected.wrapping_add(u64::from_le_bytes(word.try_into().unwrap()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.mkv");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(movie_hash(&path).unwrap(), Some(format!("{expected:016x}")));
        assert_eq!(movie_hash_of(&bytes), Some(format!("{expected:016x}")));
    }

    #[test]
    fn small_files_have_no_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.mkv");
        std::fs::write(&path, vec![1u8; 131_071]).unwrap();
        assert_eq!(movie_hash(&path).unwrap(), None);
        assert!(movie_hash(&dir.path().join("absent.mkv")).is_err());
    }
}
