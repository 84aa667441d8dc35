//! Impact preview: the planner's row estimate for a held write, so the approver sees how much
//! it touches. EXPLAIN (without ANALYZE) runs nothing. It runs on a separate, short-lived
//! upstream connection — never on the client's session — and through the extended protocol,
//! whose Parse accepts exactly one statement, so a string with a second statement fails
//! instead of executing it.
//!
//! A held Execute of a parameterised statement (`UPDATE … WHERE id > $1`) is planned with the
//! values its Bind gave ([`Parameters`]): the EXPLAIN is Parsed with the parameter types the
//! client's Parse declared and Bound with the client's own format codes and values, bytes as
//! sent (binary values stay binary), so the planner estimates the rows this execution
//! touches. Values are never written into SQL text.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_rustls::rustls;

use super::msg;
use super::{side_query, upstream};
use crate::approval::Impact;
use crate::config::Target;

const LIMIT: Duration = Duration::from_secs(5);
const MAX_PLAN: usize = 1 << 20;
/// Previews running at once, over all targets: each holds an upstream connection, and a
/// burst of holds must not use up the target's connection slots.
const MAX_CONCURRENT: usize = 4;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT);

/// A prepared statement's parameters as the server sees them when a portal of it runs: the
/// parameter types its Parse declared and, once bound, the formats and values of the Bind.
/// Kept as the client sent them; read only when a preview runs.
#[derive(Clone, Debug, Default)]
pub struct Parameters {
    /// The Parse's parameter-type count and OIDs (empty: none declared).
    types: Bytes,
    /// The Bind from its parameter format codes on; `None`: not bound (a simple Query, or a
    /// statement not yet bound).
    bound: Option<Bytes>,
}

/// A Parse body after its text (`after_text`) that declares no parameter types.
fn declares_none(after_text: &[u8]) -> bool {
    matches!(after_text, [0, 0, ..]) || after_text.is_empty()
}

impl Parameters {
    /// What a Parse declares; `after_text`: the Parse body after the statement text.
    pub fn declared(after_text: &[u8]) -> Parameters {
        Parameters {
            types: if declares_none(after_text) {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(after_text)
            },
            bound: None,
        }
    }

    /// Whether these are exactly what [`Parameters::declared`] makes of `after_text`.
    pub fn declares(&self, after_text: &[u8]) -> bool {
        self.bound.is_none()
            && if declares_none(after_text) {
                self.types.is_empty()
            } else {
                self.types == after_text
            }
    }

    /// These parameters bound by a Bind; `after_names`: its body after the portal and
    /// statement names.
    pub fn bind(&self, after_names: &[u8]) -> Parameters {
        Parameters {
            types: self.types.clone(),
            bound: Some(Bytes::copy_from_slice(after_names)),
        }
    }

    /// The body of the EXPLAIN's Parse after its text: the declared types, as sent.
    fn parse_tail(&self) -> &[u8] {
        if self.types.is_empty() {
            &[0, 0]
        } else {
            &self.types
        }
    }

    /// The body of the EXPLAIN's Bind (unnamed portal and statement): the client's format
    /// codes and values, and one text result column; `None` if the Bind is malformed (the
    /// server refused it too).
    fn bind_body(&self) -> Option<BytesMut> {
        let mut body = BytesMut::new();
        body.put_slice(&[0, 0]);
        match &self.bound {
            Some(b) => body.put_slice(b.get(..values_end(b)?)?),
            None => body.put_slice(&[0, 0, 0, 0]),
        }
        body.put_i16(0);
        Some(body)
    }
}

/// Where a Bind's values end (its result format codes start), counted from its parameter
/// format codes; `None` if the counts or lengths do not fit in `b`.
fn values_end(b: &[u8]) -> Option<usize> {
    let formats = usize::try_from(msg::i16_at(b, 0)?).ok()?;
    let mut at = 2 + 2 * formats;
    let count = usize::try_from(msg::i16_at(b, at)?).ok()?;
    at += 2;
    for _ in 0..count {
        let len = msg::i32_at(b, at)?;
        at += 4;
        // -1 is NULL; any other negative length is malformed.
        if len >= 0 {
            at += usize::try_from(len).ok()?;
        } else if len != -1 {
            return None;
        }
    }
    (at <= b.len()).then_some(at)
}

/// The planner's estimate for `statement` run with `parameters` (default: none).
pub async fn preview(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    statement: &str,
    parameters: &Parameters,
) -> Impact {
    // Wait a little for a slot; an approver reading the request later still benefits.
    let Ok(Ok(_slot)) = tokio::time::timeout(LIMIT, SLOTS.acquire()).await else {
        return Impact {
            estimated_rows: None,
            error: Some("skipped: too many previews in flight".into()),
        };
    };
    let r = tokio::time::timeout(LIMIT, explain(target, tls, statement, parameters)).await;
    match r {
        Ok(Ok(rows)) => Impact {
            estimated_rows: Some(rows),
            error: None,
        },
        Ok(Err(e)) => Impact {
            estimated_rows: None,
            error: Some(e),
        },
        Err(_) => Impact {
            estimated_rows: None,
            error: Some("EXPLAIN timed out".into()),
        },
    }
}

async fn explain(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    statement: &str,
    parameters: &Parameters,
) -> Result<f64, String> {
    let bind = parameters
        .bind_body()
        .ok_or("the statement's Bind message is malformed")?;
    let params = [("application_name".to_string(), "jitgate-impact".to_string())];
    let up = upstream::connect(target, tls, &params)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_slice(
        format!("EXPLAIN (FORMAT JSON) {statement}")
            .replace('\0', "")
            .as_bytes(),
    );
    body.put_u8(0);
    body.put_slice(parameters.parse_tail());
    msg::frame(&mut out, b'P', &body);
    msg::frame(&mut out, b'B', &bind);
    msg::frame(&mut out, b'E', &[0, 0, 0, 0, 0]);
    msg::frame(&mut out, b'S', &[]);
    let mut plan = None;
    side_query::exchange(up, &out, MAX_PLAN, |tag, b| {
        // DataRow: one column, the JSON plan.
        if tag == b'D' {
            let n = msg::i32_at(b, 2).unwrap_or(-1);
            if let Some(v) = usize::try_from(n).ok().and_then(|n| b.get(6..6 + n)) {
                plan = Some(String::from_utf8_lossy(v).into_owned());
            }
        }
        Ok(())
    })
    .await?;
    let plan = plan.ok_or("EXPLAIN returned no plan")?;
    let v: serde_json::Value = serde_json::from_str(&plan).map_err(|e| e.to_string())?;
    let top = v.get(0).and_then(|p| p.get("Plan")).ok_or("no plan")?;
    // INSERT/UPDATE/DELETE/MERGE: the ModifyTable node estimates what it returns (often 0);
    // the rows it touches are its input's.
    let node = match top.get("Node Type").and_then(|t| t.as_str()) {
        Some("ModifyTable") => top.get("Plans").and_then(|p| p.get(0)).unwrap_or(top),
        _ => top,
    };
    node.get("Plan Rows")
        .and_then(|r| r.as_f64())
        .ok_or_else(|| "no row estimate in the plan".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_parameters_know_the_parse_they_came_from() {
        let int4: &[u8] = &[0, 1, 0, 0, 0, 23];
        let text: &[u8] = &[0, 1, 0, 0, 0, 25];
        for after in [&[][..], &[0, 0], int4, text] {
            assert!(Parameters::declared(after).declares(after), "{after:?}");
        }
        assert!(Parameters::declared(&[]).declares(&[0, 0]));
        assert!(!Parameters::declared(int4).declares(text));
        assert!(!Parameters::declared(int4).declares(&[0, 0]));
        assert!(!Parameters::declared(&[0, 0]).declares(int4));
        let bound = Parameters::declared(int4).bind(&bind(&[], &[Some(b"1")], &[]));
        assert!(
            !bound.declares(int4),
            "a bound portal's parameters are not a Parse's"
        );
    }

    /// A Bind body after the names: `formats`, then `values` (`None`: NULL), then `results`.
    fn bind(formats: &[i16], values: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_i16(formats.len() as i16);
        formats.iter().for_each(|f| b.put_i16(*f));
        b.put_i16(values.len() as i16);
        for v in values {
            match v {
                Some(v) => {
                    b.put_i32(v.len() as i32);
                    b.put_slice(v);
                }
                None => b.put_i32(-1),
            }
        }
        b.put_i16(results.len() as i16);
        results.iter().for_each(|f| b.put_i16(*f));
        b.to_vec()
    }

    #[test]
    fn the_explain_gets_the_clients_values_and_one_text_column() {
        let p = Parameters::declared(&[0, 1, 0, 0, 0, 20]);
        let sent = bind(&[1], &[Some(&9000i64.to_be_bytes()), None], &[1, 1, 0]);
        let body = p.bind(&sent).bind_body().expect("well formed");
        let mut want = vec![0, 0];
        want.extend_from_slice(&bind(&[1], &[Some(&9000i64.to_be_bytes()), None], &[]));
        assert_eq!(&body[..], &want[..]);
        assert_eq!(p.parse_tail(), &[0, 1, 0, 0, 0, 20]);
    }

    #[test]
    fn unbound_and_undeclared_mean_none() {
        let p = Parameters::declared(&[0, 0]);
        assert_eq!(p.parse_tail(), &[0, 0]);
        assert_eq!(
            &p.bind_body().expect("empty bind")[..],
            &[0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn malformed_binds_give_no_body() {
        let p = Parameters::default();
        for bad in [
            vec![],
            vec![0, 1],
            vec![0, 0, 0, 1, 0, 0, 0, 9, 1, 2],
            vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe],
            vec![0xff, 0xff, 0, 0],
            vec![0, 0, 0xff, 0xff],
        ] {
            assert!(p.bind(&bad).bind_body().is_none(), "{bad:?}");
        }
    }
}
