//! A session's timeline as text: one line per statement or command with its offset, text,
//! decision, approver, result and duration, and the Bind values under a statement.
//!
//! Invariant: every text that came from a user is flattened to one line and shown escaped
//! (`crate::escape::terminal`), so it cannot forge lines of the timeline.

use std::io::Write;

use serde_json::Value;

use crate::cli::audit::fmt_time;

pub(super) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max - 1).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn decision_text(e: &Value) -> String {
    let mut d = e["decision"].as_str().unwrap_or("?").to_string();
    if let Some(r) = e["request"].as_str() {
        d.push_str(&format!(" {r}"));
    }
    if let Some(g) = e["grant"].as_str() {
        d.push_str(&format!(" grant {g}"));
    }
    if let Some(r) = e["rule"].as_str() {
        d.push_str(&format!(" (rule \"{r}\")"));
    }
    d
}

/// A Postgres (or SSH command) session as a timeline: offset, statement, decision,
/// approver, result and duration.
pub(super) fn timeline(
    mut out: Box<dyn Write>,
    session: &Value,
    events: &[Value],
) -> std::io::Result<()> {
    let start = session["started_at"]
        .as_f64()
        .or_else(|| events.first().and_then(|e| e["at"].as_f64()))
        .unwrap_or(0.0);
    let header = format!(
        "session {}  {}  {} -> {}  from {}{}  started {}",
        session["id"].as_str().unwrap_or("?"),
        session["protocol"].as_str().unwrap_or("?"),
        session["user"].as_str().unwrap_or("?"),
        session["target"].as_str().unwrap_or("?"),
        session["client"].as_str().unwrap_or("?"),
        session["application"]
            .as_str()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        fmt_time(start),
    );
    writeln!(out, "{}", crate::escape::terminal(&header))?;
    for e in events {
        let off = e["at"].as_f64().unwrap_or(start) - start;
        let what = match e["kind"].as_str().unwrap_or("") {
            "session_start" => "session start".to_string(),
            "statement" => format!(
                "{}  [{} {}]",
                one_line(e["text"].as_str().unwrap_or(""), 100),
                e["class"].as_str().unwrap_or("?"),
                decision_text(e)
            ),
            "command" => format!(
                "$ {}  [{} {}]",
                one_line(e["command"].as_str().unwrap_or(""), 100),
                e["class"].as_str().unwrap_or("?"),
                decision_text(e)
            ),
            "parse" => format!(
                "  parse {}: {}",
                quote_name(e["statement_name"].as_str().unwrap_or("")),
                one_line(e["text"].as_str().unwrap_or(""), 90)
            ),
            "bind" => format!("  bind {}", params_text(&e["params"])),
            "result" => result_text(e),
            "exit_status" => format!("  -> exit status {}", e["status"]),
            "request_created" => format!(
                "  request {} opened (rule \"{}\")",
                e["request"].as_str().unwrap_or("?"),
                e["rule"].as_str().unwrap_or("?")
            ),
            "request_impact" => format!(
                "  request {}: {}",
                e["request"].as_str().unwrap_or("?"),
                match (e["estimated_rows"].as_f64(), e["error"].as_str()) {
                    (Some(n), _) => format!("the planner estimates {n:.0} rows"),
                    (None, Some(why)) => format!("no estimate ({why})"),
                    (None, None) => "no estimate".to_string(),
                }
            ),
            "request_decided" => format!(
                "  request {} {}{}{}",
                e["request"].as_str().unwrap_or("?"),
                e["state"].as_str().unwrap_or("?"),
                e["by"]
                    .as_str()
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default(),
                e["reason"]
                    .as_str()
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": \"{r}\""))
                    .unwrap_or_default(),
            ),
            "grant_created" => format!(
                "  grant {} given, until {}",
                e["grant"].as_str().unwrap_or("?"),
                fmt_time(e["expires_at"].as_f64().unwrap_or(0.0))
            ),
            "grant_used" => format!("  grant {} used", e["grant"].as_str().unwrap_or("?")),
            "grant_revoked" => format!("  grant {} revoked", e["grant"].as_str().unwrap_or("?")),
            "recording" => continue,
            "session_end" => format!(
                "session end: {} ({} bytes in, {} bytes out)",
                e["reason"].as_str().unwrap_or("?"),
                e["bytes_in"],
                e["bytes_out"]
            ),
            other => format!("{other} {}", Value::Object(fields_without_meta(e))),
        };
        // Every field may be user-typed: the whole line is escaped, so nothing forges a line.
        writeln!(out, "{:>+10.3}s  {}", off, crate::escape::terminal(&what))?;
        // The values of the Bind folded into a statement: its line, as a `bind` event's.
        if let Some(p) = e
            .get("params")
            .filter(|p| e["kind"] == "statement" && p.as_array().is_some_and(|v| !v.is_empty()))
        {
            let what = format!("  bind {}", params_text(p));
            writeln!(out, "{:>+10.3}s  {}", off, crate::escape::terminal(&what))?;
        }
        // A result stored inside its statement's event: its line, as a `result` event's,
        // when it arrived.
        if let Some(r) = e.get("result").filter(|r| r.is_object()) {
            let off = off + r["duration_us"].as_u64().unwrap_or(0) as f64 / 1e6;
            let what = result_text(r);
            writeln!(out, "{:>+10.3}s  {}", off, crate::escape::terminal(&what))?;
        }
    }
    out.flush()
}

/// A statement's result: a `result` event, or the `result` object joined to a statement.
fn result_text(r: &Value) -> String {
    let ms = r["duration_us"].as_u64().unwrap_or(0) as f64 / 1000.0;
    match (r["command_tag"].as_str(), r["sqlstate"].as_str()) {
        (Some(tag), _) => format!("  -> {tag}  ({ms:.1} ms)"),
        (None, state) => format!(
            "  -> ERROR {}: {}  ({ms:.1} ms)",
            state.unwrap_or("?"),
            one_line(r["message"].as_str().unwrap_or(""), 90)
        ),
    }
}

fn quote_name(n: &str) -> String {
    if n.is_empty() {
        "(unnamed)".into()
    } else {
        format!("\"{n}\"")
    }
}

/// Bind parameters as stored: `null`, or `{"len", "text" | "base64"}` (only `len` when
/// redacted or over the budget).
fn params_text(p: &Value) -> String {
    let Value::Array(v) = p else {
        return p.to_string();
    };
    let items: Vec<String> = v
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let n = i + 1;
            if x.is_null() {
                return format!("${n}=NULL");
            }
            let len = x["len"].as_u64().unwrap_or(0);
            match (x["text"].as_str(), x["base64"].as_str()) {
                (Some(t), _) => format!("${n}='{}'", one_line(t, 40)),
                (None, Some(_)) => format!("${n}=<{len} bytes, binary>"),
                (None, None) => format!("${n}=<{len} bytes>"),
            }
        })
        .collect();
    items.join(" ")
}

fn fields_without_meta(e: &Value) -> serde_json::Map<String, Value> {
    let mut m = e.as_object().cloned().unwrap_or_default();
    for k in ["seq", "at", "session", "kind", "hash"] {
        m.remove(k);
    }
    m
}
