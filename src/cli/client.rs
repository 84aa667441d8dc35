//! `jitgate requests [show ID] | approve | deny | grants | revoke`: clients of the control API.
//!
//! They read `JITGATE_URL` (default `http://127.0.0.1:8080`) and `JITGATE_TOKEN`, or
//! `--url` / `--token`, print readable tables, or the API's JSON with `--json`.
//!
//! Invariant: nothing the API returns reaches the terminal raw. Every table cell, every
//! field of `requests show`, every message line goes through [`crate::escape::terminal`]
//! (one line, no control or invisible formatting character) and `--json` through
//! [`crate::escape::json`]; a table cell is also cut to [`MAX_CELL`] characters, so a user's
//! statement, `application_name` or name can neither forge a line nor break a table.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::escape;

/// The most characters a table cell shows; a longer value is cut and ends with `...`.
pub const MAX_CELL: usize = 60;

pub struct ApiClient {
    pub url: String,
    pub token: Option<String>,
    pub json: bool,
}

pub enum Failure {
    /// Could not talk to the API at all.
    Unreachable(String),
    /// The API answered with an error.
    Http(u16, String),
}

impl Failure {
    /// Print it; the exit code to use.
    pub fn report(self) -> ExitCode {
        match self {
            Failure::Unreachable(m) => {
                eprintln!("jitgate: {}", escape::terminal(&m));
                ExitCode::from(2)
            }
            Failure::Http(code, m) => {
                eprintln!("jitgate: HTTP {code}: {}", escape::terminal(&m));
                ExitCode::from(1)
            }
        }
    }

    /// The message of a 409 Conflict.
    pub fn conflict(&self) -> Option<&str> {
        match self {
            Failure::Http(409, m) => Some(m),
            _ => None,
        }
    }
}

impl ApiClient {
    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(reqwest::Method::GET, path, None)
    }

    /// GET a non-JSON body (asciicast, JSON Lines).
    pub fn get_text(&self, path: &str) -> Result<String, Failure> {
        self.call_raw(reqwest::Method::GET, path, None)
            .map(|(_, text)| text)
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let (_, text) = self.call_raw(method, path, body)?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn call_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, String), Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let url = format!("{}{}", self.url.trim_end_matches('/'), path);
        rt.block_on(async {
            let client = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(|e| Failure::Unreachable(e.to_string()))?;
            let mut req = client.request(method, &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.map_err(|e| {
                Failure::Unreachable(format!(
                    "cannot reach the API at {}: {e}; is `jitgate serve` running? set JITGATE_URL or --url",
                    self.url
                ))
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            if status >= 400 {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                let msg = v
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                let hint = match status {
                    401 => " (set JITGATE_TOKEN or --token to your API token)",
                    _ => "",
                };
                return Err(Failure::Http(status, format!("{msg}{hint}")));
            }
            Ok((status, text))
        })
    }

    fn run(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        show: impl Fn(&Value),
    ) -> ExitCode {
        match self.call(method, path, body) {
            Ok(v) => {
                if self.json {
                    print_json(&v);
                } else {
                    show(&v);
                }
                ExitCode::SUCCESS
            }
            Err(e) => e.report(),
        }
    }

    pub fn requests(&self, state: Option<&str>) -> ExitCode {
        let path = match state {
            Some(s) => format!("/v1/requests?state={}", super::audit::urlencode(s)),
            None => "/v1/requests".to_string(),
        };
        self.run(reqwest::Method::GET, &path, None, |v| {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| a.iter().map(request_row).collect())
                .unwrap_or_default();
            table(
                &[
                    "ID",
                    "STATE",
                    "USER",
                    "TARGET",
                    "CLASS",
                    "RULE",
                    "AGE",
                    "STATEMENT",
                ],
                &rows,
            );
        })
    }

    /// `jitgate requests show ID`: one request whole, what an approver decides from.
    pub fn show(&self, id: &str) -> ExitCode {
        let path = format!("/v1/requests/{}", super::audit::urlencode(id));
        self.run(reqwest::Method::GET, &path, None, |r| {
            print!("{}", super::show::request_detail(r, now()));
        })
    }

    /// `scope`: `shape`, `tables` or `exact` (with a grant only; the server's default is
    /// `shape`).
    pub fn approve(
        &self,
        id: &str,
        grant: Option<Duration>,
        scope: Option<&str>,
        reason: Option<&str>,
    ) -> ExitCode {
        let mut body = json!({ "reason": reason.unwrap_or("") });
        if let Some(g) = grant {
            body["grant_secs"] = json!(g.as_secs());
        }
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        self.run(
            reqwest::Method::POST,
            &format!("/v1/requests/{}/approve", super::audit::urlencode(id)),
            Some(body),
            |v| {
                let state = s(v, "state");
                match v.get("grant").and_then(Value::as_str) {
                    Some(g) => print_line(&format!("{id}: {state}, grant {g}")),
                    None => print_line(&format!("{id}: {state}")),
                }
            },
        )
    }

    pub fn deny(&self, id: &str, reason: &str) -> ExitCode {
        let body = json!({ "reason": reason });
        self.run(
            reqwest::Method::POST,
            &format!("/v1/requests/{}/deny", super::audit::urlencode(id)),
            Some(body),
            |v| print_line(&format!("{id}: {}", s(v, "state"))),
        )
    }

    pub fn grants(&self) -> ExitCode {
        self.run(reqwest::Method::GET, "/v1/grants", None, |v| {
            let rows: Vec<Vec<String>> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|g| {
                            vec![
                                s(g, "id"),
                                s(g, "user"),
                                s(g, "target"),
                                s(g, "class"),
                                s(g, "scope"),
                                list(g, "tables"),
                                remaining(g.get("expires_at").and_then(Value::as_u64)),
                                s(g, "approved_by"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(
                &[
                    "ID",
                    "USER",
                    "TARGET",
                    "CLASS",
                    "SCOPE",
                    "TABLES",
                    "EXPIRES IN",
                    "APPROVED BY",
                ],
                &rows,
            );
        })
    }

    pub fn revoke(&self, id: &str) -> ExitCode {
        self.run(
            reqwest::Method::DELETE,
            &format!("/v1/grants/{}", super::audit::urlencode(id)),
            None,
            |_| print_line(&format!("{id}: revoked")),
        )
    }
}

pub(super) fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

pub(super) fn list(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn now() -> u64 {
    crate::approval::unix_secs(SystemTime::now())
}

fn remaining(at: Option<u64>) -> String {
    match at {
        Some(t) if t > now() => format!("{}s", t - now()),
        Some(_) => "expired".into(),
        None => String::new(),
    }
}

fn age(r: &Value) -> String {
    r.get("created_at")
        .and_then(Value::as_u64)
        .map(|t| format!("{}s", now().saturating_sub(t)))
        .unwrap_or_default()
}

fn request_row(r: &Value) -> Vec<String> {
    // Runs of ordinary whitespace (a multi-line statement) read better as one space here;
    // `requests show` prints the statement exactly, escaped.
    let stmt: String = s(r, "statement")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        s(r, "id"),
        s(r, "state"),
        s(r, "user"),
        s(r, "target"),
        s(r, "class"),
        s(r, "rule"),
        age(r),
        stmt,
    ]
}

/// `text` as a table cell: escaped to one line ([`escape::terminal`]), at most [`MAX_CELL`]
/// characters.
fn cell(text: &str) -> String {
    let text = escape::terminal(text);
    if text.chars().count() <= MAX_CELL {
        return text.into_owned();
    }
    text.chars().take(MAX_CELL - 3).collect::<String>() + "..."
}

/// One line of output, escaped: what the API returns may hold anything a user typed.
fn print_line(line: &str) {
    println!("{}", escape::terminal(line));
}

/// The API's JSON, pretty and escaped for the terminal ([`escape::json`]): the same value.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        escape::json(&serde_json::to_string_pretty(v).unwrap_or_default())
    );
}

/// Print left-aligned columns; every cell is escaped and cut ([`cell`]).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "UPDATE t SET v = 1\n+  0.000s  approved by bob\r\x1b[2J\u{9b}\u{202e}";

    #[test]
    fn cells_are_one_escaped_line_of_bounded_length() {
        let c = cell(HOSTILE);
        assert!(
            c.split('\n').all(escape::is_inert) && !c.contains('\n'),
            "{c:?}"
        );
        assert!(c.starts_with("UPDATE t SET v = 1\\n+"), "{c:?}");
        let long = cell(&"x".repeat(500));
        assert_eq!(long.chars().count(), MAX_CELL);
        assert!(long.ends_with("..."));
        assert_eq!(cell("alice"), "alice");
    }
}
