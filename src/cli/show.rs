//! `jitgate requests show ID`: one request whole, as an approver decides from it.
//!
//! Invariant: every line is escaped whole ([`crate::escape::terminal`]), so a statement,
//! name, `application_name` or reason holding a newline, an escape sequence or a
//! bidirectional override prints as visible escapes on its own field's line: nothing a user
//! typed forges a field or reaches the terminal raw.

use serde_json::Value;

use super::client::{list, s};
use crate::escape;

/// A request (`GET /v1/requests/{id}`) as `label  value` lines, each escaped whole; `now`:
/// unix seconds, for its age and expiry.
pub(super) fn request_detail(r: &Value, now: u64) -> String {
    let at = |k: &str| r.get(k).and_then(Value::as_u64);
    let since = |t: u64| format!("{}s ago", now.saturating_sub(t));
    let pending = s(r, "state") == "pending";
    let approvals = r
        .get("approvals")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut fields: Vec<(&str, String)> = vec![
        ("request", s(r, "id")),
        ("state", s(r, "state")),
        ("statement", s(r, "statement")),
        ("class", s(r, "class")),
        ("tables", or_dash(list(r, "tables"))),
        ("impact", impact(r)),
        ("rule", s(r, "rule")),
        ("requester", s(r, "user")),
        ("source", s(r, "source")),
        ("application", or_dash(s(r, "application"))),
        (
            "target",
            format!("{} ({})", s(r, "target"), s(r, "protocol")),
        ),
        ("session", s(r, "session")),
        ("age", at("created_at").map(since).unwrap_or_default()),
        (
            "expires",
            match at("expires_at") {
                Some(t) if pending && t > now => format!("in {}s", t - now),
                Some(_) if pending => "now".into(),
                _ => "-".into(),
            },
        ),
        (
            "approvals",
            format!("{} of {}", approvals.len(), s(r, "approvals_required")),
        ),
    ];
    for a in approvals {
        let when = a.get("at").and_then(Value::as_u64).map(since);
        let mut line = format!("{} {}", s(a, "by"), when.unwrap_or_default());
        if !s(a, "reason").is_empty() {
            line.push_str(&format!(": {}", s(a, "reason")));
        }
        fields.push(("  approved by", line));
    }
    for (label, key) in [
        ("decided by", "decided_by"),
        ("reason", "reason"),
        ("grant", "grant"),
    ] {
        if r.get(key).is_some_and(|v| !v.is_null()) {
            fields.push((label, s(r, key)));
        }
    }
    let width = fields.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    fields
        .iter()
        .map(|(label, value)| {
            format!(
                "{}\n",
                escape::terminal(&format!("{label:<width$}  {value}"))
            )
        })
        .collect()
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "-".into() } else { text }
}

/// The impact preview of a request, for a human.
fn impact(r: &Value) -> String {
    let impact = r.get("impact");
    let field = |k: &str| impact.and_then(|i| i.get(k));
    if let Some(rows) = field("estimated_rows").and_then(Value::as_f64) {
        return format!("about {} rows (planner estimate)", rows.round());
    }
    if let Some(e) = field("error").and_then(Value::as_str) {
        return format!("unknown: {e}");
    }
    match (s(r, "protocol").as_str(), s(r, "class").as_str()) {
        ("postgres", "write") => "not estimated (yet)".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOSTILE: &str = "UPDATE t SET v = 1\n+  0.000s  approved by bob\r\x1b[2J\u{9b}\u{202e}";

    #[test]
    fn a_request_shows_whole_with_one_line_per_field() {
        let r = json!({
            "id": "r1", "state": "pending", "user": "alice\n", "target": "app-db",
            "protocol": "postgres", "class": "write", "statement": HOSTILE,
            "tables": ["public.t"], "rule": "writes", "source": "127.0.0.1",
            "session": "s1", "created_at": 1000, "expires_at": 1300,
            "approvals": [{"by": "bob", "at": 1010, "reason": "ok\x1b]8;;"}],
            "approvals_required": 2, "impact": {"estimated_rows": 999.6},
            "application": "psql\n\x1b[2Jforged",
        });
        let out = request_detail(&r, 1100);
        assert!(out.split('\n').all(escape::is_inert), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        let field = |label: &str| {
            lines
                .iter()
                .find(|l| l.split("  ").next() == Some(label))
                .unwrap_or_else(|| panic!("no {label} in {out}"))
                .to_string()
        };
        assert!(
            field("statement").ends_with(
                "UPDATE t SET v = 1\\n+  0.000s  approved by bob\\r\\x1b[2J\\x9b\\u{202e}"
            )
        );
        assert!(field("impact").contains("about 1000 rows"));
        assert!(field("application").ends_with("psql\\n\\x1b[2Jforged"));
        assert!(field("requester").ends_with("alice\\n"));
        assert!(field("approvals").ends_with("1 of 2"));
        assert!(field("expires").ends_with("in 200s"));
        assert!(field("age").ends_with("100s ago"));
        assert!(field("tables").ends_with("public.t"));
        assert_eq!(lines.len(), 16, "one line per field and approval:\n{out}");
    }

    #[test]
    fn impact_says_why_there_is_no_estimate() {
        let r = json!({"protocol": "postgres", "class": "write", "impact": {"error": "boom\n"}});
        assert_eq!(impact(&r), "unknown: boom\n");
        let r = json!({"protocol": "postgres", "class": "write", "impact": {}});
        assert_eq!(impact(&r), "not estimated (yet)");
        let r = json!({"protocol": "ssh", "class": "write", "impact": {}});
        assert_eq!(impact(&r), "-");
    }
}
