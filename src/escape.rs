//! Escaping user-supplied text for the humans who read it: an approver's terminal (CLI
//! tables, `jitgate requests show`, `jitgate replay`, `--json` output) and chat (the
//! webhook's Slack `text`).
//!
//! Invariant: what these functions return contains no character a terminal or Slack
//! interprets: no C0 or C1 control character (newline, carriage return and escape included),
//! no DEL, no Unicode bidirectional or invisible formatting character, and, for Slack, no
//! `<`, `>` or `&` (so no `<!here>`, no `<url|label>` link). Each such character is shown
//! as a visible escape (`\n`, `\x1b`, `\u{202e}`), so what a user typed cannot forge a line
//! or hide text. Callers escape whole composed lines: their own text never needs escaping.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that reorder or hide text without being control characters.
fn invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

fn needs_escape(c: char) -> bool {
    c.is_control() || invisible_format(c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
}

/// Whether a terminal prints `text` as it is, on one line: [`terminal`] would leave it alone.
pub fn is_inert(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

/// `text` safe to print on a terminal, on one line.
pub fn terminal(text: &str) -> Cow<'_, str> {
    if is_inert(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` safe to post as Slack `mrkdwn` (and on one line): Slack's own escapes for `&`, `<`
/// and `>`, and [`terminal`]'s for the rest.
pub fn slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if needs_escape(c) => push_escaped(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

/// `text` (JSON serde_json wrote) safe to print on a terminal, and still the same JSON value:
/// every character [`terminal`] escapes that serde_json leaves raw (DEL, C1 controls, invisible
/// formatting) becomes a `\uXXXX` escape. serde_json escapes every C0 control inside strings
/// itself, so the newlines, tabs and carriage returns left are layout between tokens and stay.
pub fn json(text: &str) -> Cow<'_, str> {
    let raw = |c: char| needs_escape(c) && !matches!(c, '\n' | '\r' | '\t');
    if !text.chars().any(raw) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if raw(c) {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_unchanged_and_not_copied() {
        let s = "SELECT * FROM accounts WHERE name = 'Zoë' -- ok";
        assert!(matches!(terminal(s), Cow::Borrowed(_)));
        assert_eq!(slack(s), s);
    }

    #[test]
    fn controls_and_invisible_characters_become_visible() {
        assert_eq!(
            terminal("app\n+  0.000s  forged\r\x1b[2J\u{7f}\u{85}"),
            "app\\n+  0.000s  forged\\r\\x1b[2J\\x7f\\x85"
        );
        assert_eq!(terminal("a\u{202e}gnp.exe"), "a\\u{202e}gnp.exe");
        assert_eq!(
            terminal("zero\u{200b}width\u{feff}"),
            "zero\\u{200b}width\\u{feff}"
        );
    }

    #[test]
    fn slack_links_and_mentions_are_text() {
        assert_eq!(
            slack("<!here> <https://evil.example|Approve> & \n"),
            "&lt;!here&gt; &lt;https://evil.example|Approve&gt; &amp; \\n"
        );
    }

    #[test]
    fn json_keeps_its_value_and_loses_every_raw_control() {
        let value = serde_json::json!({
            "statement": "UPDATE t\n\x1b[2J\r\u{7f}\u{9b}31m\u{202e}\u{1f600}",
            "n": [1, 2],
        });
        let text = serde_json::to_string_pretty(&value).expect("json");
        let safe = json(&text);
        assert!(
            !safe
                .chars()
                .any(|c| needs_escape(c) && !matches!(c, '\n' | '\r' | '\t')),
            "{safe}"
        );
        assert!(safe.contains("\\u007f\\u009b31m\\u202e\u{1f600}"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
        assert!(matches!(json("{\n  \"a\": 1\n}"), Cow::Borrowed(_)));
    }
}
