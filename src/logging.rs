//! The log's writer: every line the daemon logs is one line, whatever it quotes. A path, a
//! webhook field or an error message from outside may carry a newline, a carriage return,
//! a NUL or a terminal escape; written raw, it would forge log lines or garble a terminal.
//! [`EscapeControls`] writes such bytes as `\n`, `\r`, `\0`, `\x1b`, … (the line's own final
//! newline stays).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] whose writers escape control characters (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct EscapeControls<M> {
    inner: M,
    /// Whether ESC passes (the log is coloured for a terminal).
    keep_escape: bool,
}

impl<M> EscapeControls<M> {
    /// Escapes what `inner`'s writers get; `colored` keeps ESC, for the log's own colours.
    pub fn new(inner: M, colored: bool) -> Self {
        Self {
            inner,
            keep_escape: colored,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapeControls<M> {
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping {
            inner: self.inner.make_writer(),
            keep_escape: self.keep_escape,
        }
    }
}

/// A writer that escapes control characters; see [`EscapeControls`].
#[derive(Debug)]
pub struct Escaping<W> {
    inner: W,
    keep_escape: bool,
}

/// `bytes` with control characters escaped, but for a final newline.
pub fn escape_controls(bytes: &[u8], keep_escape: bool) -> std::borrow::Cow<'_, [u8]> {
    let last = bytes.len().saturating_sub(1);
    let needs = |(i, b): (usize, &u8)| match *b {
        b'\n' => i != last,
        b'\t' => false,
        0x1b => !keep_escape,
        b => b < 0x20 || b == 0x7f,
    };
    if !bytes.iter().enumerate().any(needs) {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for (i, b) in bytes.iter().enumerate() {
        if !needs((i, b)) {
            out.push(*b);
            continue;
        }
        match *b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            b => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole line per event.
        self.inner
            .write_all(&escape_controls(buf, self.keep_escape))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_newline_nul_or_escape_cannot_start_or_garble_a_log_line() {
        let line = b"INFO webhook video not taken: /media/a\nERROR forged\0\r\x1b[2J.mkv\tok\n";
        let escaped = escape_controls(line, false);
        assert_eq!(
            std::str::from_utf8(&escaped).unwrap(),
            "INFO webhook video not taken: /media/a\\nERROR forged\\0\\r\\x1b[2J.mkv\tok\n"
        );
        // Colours for a terminal keep ESC; text stays as it is, UTF-8 too.
        assert_eq!(
            &*escape_controls(b"\x1b[32mINFO\x1b[0m caf\xc3\xa9\n", true),
            b"\x1b[32mINFO\x1b[0m caf\xc3\xa9\n"
        );
        let mut written = Vec::new();
        let mut writer = Escaping {
            inner: &mut written,
            keep_escape: false,
        };
        writer.write_all(b"a\nb\n").unwrap();
        assert_eq!(written, b"a\\nb\n");
    }
}
