//! What one cue's text becomes on the way to a translation service and back.
//!
//! Services translate prose; a cue is prose dressed up. Before sending, the dressing is taken
//! off and kept: leading ASS override blocks (`{\an8}`), tags wrapping the whole cue
//! (`<i>…</i>`, `<font color=…>…</font>`, also when every line is wrapped alike) and the line
//! breaks (a cue is sent as one line, so the service sees whole sentences; a two-speaker
//! dialogue cue, every line starting with `-`, keeps its breaks). After, the answer is
//! checked (not empty, the inline tags left inside still there, not wildly longer than the
//! source: the sign of a merged cue) and dressed again: re-broken to the source's line
//! count at the spaces nearest an even split, wrappers and override blocks put back.

/// Tags that may wrap a whole cue or line (lower case).
const WRAPPERS: [&str; 5] = ["i", "b", "u", "s", "font"];

/// A cue's text as sent, with what is needed to dress the answer again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// What the service gets.
    pub send: String,
    /// Leading override blocks (`{\an8}`), put back in front.
    prefix: String,
    /// Tags wrapping the whole cue, outermost first: (open, close).
    wrappers: Vec<(String, String)>,
    /// A tag wrapping every line alike: (open, close).
    per_line: Option<(String, String)>,
    /// Lines in the source cue.
    lines: usize,
    /// A dialogue cue: sent with its line breaks.
    dialogue: bool,
    /// The inline tags left in `send`, normalised and sorted: the answer must keep them.
    tags: Vec<String>,
}

/// Why an answer for one cue is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Nothing came back.
    #[error("empty translation")]
    Empty,
    /// An inline tag was lost or invented.
    #[error("inline tags changed: sent {sent:?}, got {got:?}")]
    Tags {
        /// Tags sent.
        sent: Vec<String>,
        /// Tags received.
        got: Vec<String>,
    },
    /// Far longer than the source: most likely two cues merged into one.
    #[error("translation {got} chars for a {sent}-char cue (merged cues?)")]
    TooLong {
        /// Source length.
        sent: usize,
        /// Answer length.
        got: usize,
    },
}

/// The tag name of an opening tag `<name …>`, lower case.
fn open_tag_name(text: &str) -> Option<(String, usize)> {
    let rest = text.strip_prefix('<')?;
    if rest.starts_with('/') {
        return None;
    }
    let end = rest.find('>')?;
    let name: String = rest[..end]
        .split(|c: char| c.is_whitespace())
        .next()?
        .to_ascii_lowercase();
    WRAPPERS.contains(&name.as_str()).then_some((name, end + 2))
}

/// `text` without an `<name …>…</name>` wrapping all of it: (open, inner, close).
fn strip_wrapper(text: &str) -> Option<(String, String, String)> {
    let (name, open_len) = open_tag_name(text)?;
    let close = format!("</{name}>");
    let lower = text.to_ascii_lowercase();
    if !lower.ends_with(&close) || text.len() < open_len + close.len() {
        return None;
    }
    let inner = &text[open_len..text.len() - close.len()];
    let inner_lower = inner.to_ascii_lowercase();
    // The wrapper must pair with itself, not with tags inside.
    if inner_lower.contains(&format!("<{name}")) || inner_lower.contains(&close) {
        return None;
    }
    Some((
        text[..open_len].to_owned(),
        inner.to_owned(),
        text[text.len() - close.len()..].to_owned(),
    ))
}

/// The inline tags in `text` (`<…>` and `{\…}`), normalised (lower case, no spaces or
/// quotes) and sorted.
fn tags_in(text: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['<', '{']) {
        let close = if rest[start..].starts_with('<') {
            '>'
        } else {
            '}'
        };
        let Some(len) = rest[start..].find(close) else {
            break;
        };
        let tag = &rest[start..start + len + 1];
        if close == '>' || tag.starts_with("{\\") {
            tags.push(
                tag.chars()
                    .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                    .collect::<String>()
                    .to_lowercase(),
            );
        }
        rest = &rest[start + len + 1..];
    }
    tags.sort();
    tags
}

/// Characters, not bytes.
fn chars(text: &str) -> usize {
    text.chars().count()
}

impl Prepared {
    /// Undresses a cue's text for sending.
    pub fn new(text: &str) -> Self {
        let mut rest = text.trim();
        let mut prefix = String::new();
        while rest.starts_with("{\\") {
            let Some(end) = rest.find('}') else { break };
            prefix.push_str(&rest[..=end]);
            rest = rest[end + 1..].trim_start();
        }
        let mut body = rest.to_owned();
        let mut wrappers = Vec::new();
        while let Some((open, inner, close)) = strip_wrapper(&body) {
            wrappers.push((open, close));
            body = inner.trim().to_owned();
        }
        let mut lines: Vec<String> = body.lines().map(|l| l.trim().to_owned()).collect();
        let mut per_line = None;
        if lines.len() > 1 {
            let stripped: Vec<_> = lines.iter().map(|l| strip_wrapper(l)).collect();
            if let Some(Some((open, _, close))) = stripped.first()
                && stripped.iter().all(|s| {
                    s.as_ref()
                        .is_some_and(|(o, _, c)| o == open && c.eq_ignore_ascii_case(close))
                })
            {
                per_line = Some((open.clone(), close.clone()));
                lines = stripped
                    .into_iter()
                    .flatten()
                    .map(|(_, inner, _)| inner.trim().to_owned())
                    .collect();
            }
        }
        let lines_count = lines.len().max(1);
        let dialogue = lines.len() > 1 && lines.iter().all(|l| l.starts_with('-'));
        let send = if dialogue {
            lines.join("\n")
        } else {
            lines.join(" ")
        };
        let tags = tags_in(&send);
        Self {
            send,
            prefix,
            wrappers,
            per_line,
            lines: lines_count,
            dialogue,
            tags,
        }
    }

    /// Checks the service's answer and dresses it as the source was.
    pub fn restore(&self, answer: &str) -> Result<String, Rejected> {
        let answer = answer.trim();
        if answer.is_empty() && !self.send.is_empty() {
            return Err(Rejected::Empty);
        }
        let got = tags_in(answer);
        if got != self.tags {
            return Err(Rejected::Tags {
                sent: self.tags.clone(),
                got,
            });
        }
        let (sent, got) = (chars(&self.send), chars(answer));
        if got > sent * 4 + 40 {
            return Err(Rejected::TooLong { sent, got });
        }
        let answer_lines: Vec<&str> = answer
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let joined = answer_lines.join(" ");
        let lines: Vec<String> = if self.dialogue && answer_lines.len() == self.lines {
            answer_lines.iter().map(|l| (*l).to_owned()).collect()
        } else if let Some(turns) = self
            .dialogue
            .then(|| dialogue_turns(&joined))
            .filter(|turns| turns.len() == self.lines)
        {
            turns
        } else {
            rebreak(&joined, self.lines)
        };
        let lines: Vec<String> = match &self.per_line {
            Some((open, close)) => lines.iter().map(|l| format!("{open}{l}{close}")).collect(),
            None => lines,
        };
        let mut text = lines.join("\n");
        for (open, close) in self.wrappers.iter().rev() {
            text = format!("{open}{text}{close}");
        }
        Ok(format!("{}{text}", self.prefix))
    }
}

/// A dialogue answered on one line (`- Salut. - Bonjour.`), one speaker's turn a line.
fn dialogue_turns(text: &str) -> Vec<String> {
    let mut turns: Vec<String> = Vec::new();
    for part in text.split(" -") {
        match turns.last_mut() {
            None => turns.push(part.trim().to_owned()),
            Some(_) => turns.push(format!("-{}", part.trim_end())),
        }
    }
    turns.iter().map(|t| t.trim().to_owned()).collect()
}

/// The runs of digits in `text`, sorted.
fn numbers(text: &str) -> Vec<&str> {
    let mut runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect();
    runs.sort_unstable();
    runs
}

/// Catches cues answered in the wrong order by a service that answers by position: when
/// the batch's answers hold exactly the numbers its texts hold (the service keeps numbers
/// as they are), each answer must hold its own text's. A service that rewrites numbers
/// (`1,000` → `1 000`) is not checked this way.
pub fn numbers_in_place(sent: &[String], answers: &[String]) -> Result<(), String> {
    fn all(texts: &[String]) -> Vec<&str> {
        let mut runs: Vec<&str> = texts.iter().flat_map(|t| numbers(t)).collect();
        runs.sort_unstable();
        runs
    }
    if all(sent) != all(answers) {
        return Ok(());
    }
    match sent
        .iter()
        .zip(answers)
        .position(|(s, a)| numbers(s) != numbers(a))
    {
        Some(i) => Err(format!(
            "the numbers of text {} came back in another text (cues reordered?)",
            i + 1
        )),
        None => Ok(()),
    }
}

/// Splits `text` into `lines` lines at the spaces (outside tags) nearest an even split;
/// fewer when there are not enough spaces.
pub fn rebreak(text: &str, lines: usize) -> Vec<String> {
    if lines <= 1 {
        return vec![text.to_owned()];
    }
    // Byte offsets of the spaces outside `<…>` and `{…}`.
    let mut spaces = Vec::new();
    let mut depth = 0usize;
    let mut seen = 0usize;
    let mut char_at = Vec::new();
    for (offset, c) in text.char_indices() {
        match c {
            '<' | '{' => depth += 1,
            '>' | '}' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 => {
                spaces.push(offset);
                char_at.push(seen);
            }
            _ => {}
        }
        seen += 1;
    }
    let total = seen;
    let mut cuts: Vec<usize> = Vec::new();
    for k in 1..lines {
        let target = total * k / lines;
        let best = (0..spaces.len())
            .filter(|&i| cuts.last().is_none_or(|&last| spaces[i] > last))
            .min_by_key(|&i| char_at[i].abs_diff(target));
        if let Some(i) = best {
            cuts.push(spaces[i]);
        }
    }
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts {
        out.push(text[start..cut].trim().to_owned());
        start = cut + 1;
    }
    out.push(text[start..].trim().to_owned());
    out.retain(|l| !l.is_empty());
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(p: &Prepared) -> String {
        // A "translation" that keeps tags: upper-case outside them.
        let mut out = String::new();
        let mut depth = 0;
        for c in p.send.chars() {
            match c {
                '<' | '{' => depth += 1,
                '>' | '}' => depth -= 1,
                _ => {}
            }
            out.extend(if depth == 0 && c != '>' && c != '}' {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                vec![c]
            });
        }
        out
    }

    #[test]
    fn override_blocks_and_whole_cue_wrappers_are_kept_out_and_put_back() {
        let p = Prepared::new("{\\an8}<i>Where are you\ngoing tonight?</i>");
        assert_eq!(p.send, "Where are you going tonight?");
        assert_eq!(
            p.restore(&upper(&p)).unwrap(),
            "{\\an8}<i>WHERE ARE YOU\nGOING TONIGHT?</i>"
        );
        let p = Prepared::new("<font color=\"#ffff00\"><b>Hey!</b></font>");
        assert_eq!(p.send, "Hey!");
        assert_eq!(
            p.restore("Salut !").unwrap(),
            "<font color=\"#ffff00\"><b>Salut !</b></font>"
        );
    }

    #[test]
    fn every_line_wrapped_alike_is_rewrapped_per_line() {
        let p = Prepared::new("<i>I told you</i>\n<i>not to come here.</i>");
        assert_eq!(p.send, "I told you not to come here.");
        assert_eq!(
            p.restore("Je t'avais dit de ne pas venir ici.").unwrap(),
            "<i>Je t'avais dit de</i>\n<i>ne pas venir ici.</i>"
        );
    }

    #[test]
    fn inner_tags_must_survive_and_dialogue_keeps_its_lines() {
        let p = Prepared::new("It was <i>her</i> idea.");
        assert_eq!(p.send, "It was <i>her</i> idea.");
        assert!(matches!(
            p.restore("C'était son idée."),
            Err(Rejected::Tags { .. })
        ));
        assert_eq!(
            p.restore("C'était <i>son</i> idée.").unwrap(),
            "C'était <i>son</i> idée."
        );
        let p = Prepared::new("- Hi.\n- Hello there.");
        assert_eq!(p.send, "- Hi.\n- Hello there.");
        assert_eq!(
            p.restore("- Salut.\n- Bonjour.").unwrap(),
            "- Salut.\n- Bonjour."
        );
        // Answered on one line: one turn a line again.
        assert_eq!(
            p.restore("- Salut. - Bonjour à toi.").unwrap(),
            "- Salut.\n- Bonjour à toi."
        );
    }

    #[test]
    fn empty_and_merged_answers_are_rejected() {
        let p = Prepared::new("Yes.");
        assert_eq!(p.restore("  "), Err(Rejected::Empty));
        let merged = "Oui. ".repeat(20);
        assert!(matches!(p.restore(&merged), Err(Rejected::TooLong { .. })));
    }

    #[test]
    fn numbers_that_moved_between_cues_are_caught() {
        let sent = ["At 5 we go.".to_owned(), "Room 12, floor 3.".to_owned()];
        let fine = ["On part à 5.".to_owned(), "Chambre 12, étage 3.".to_owned()];
        assert_eq!(numbers_in_place(&sent, &fine), Ok(()));
        let swapped = [fine[1].clone(), fine[0].clone()];
        assert!(numbers_in_place(&sent, &swapped).is_err());
        // A service that rewrites numbers is not judged by them.
        let rewritten = [
            "On part à cinq.".to_owned(),
            "Chambre 12, étage 3.".to_owned(),
        ];
        assert_eq!(numbers_in_place(&sent, &rewritten), Ok(()));
    }

    #[test]
    fn rebreak_splits_at_spaces_outside_tags() {
        assert_eq!(rebreak("one two three four", 2), ["one two", "three four"]);
        assert_eq!(
            rebreak("a <font color=x>b c</font> d", 2),
            ["a <font color=x>b", "c</font> d"]
        );
        assert_eq!(rebreak("single", 3), ["single"]);
        assert_eq!(rebreak("a b c d e f", 3), ["a b", "c d", "e f"]);
    }
}
