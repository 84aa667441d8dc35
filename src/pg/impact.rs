//! Impact preview: the planner's row estimate for a held write, so the approver sees how much
//! it touches. EXPLAIN (without ANALYZE) runs nothing. It runs on a separate, short-lived
//! upstream connection — never on the client's session — and through the extended protocol,
//! whose Parse accepts exactly one statement, so a string with a second statement fails
//! instead of executing it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

use super::msg;
use super::upstream;
use crate::approval::Impact;
use crate::config::Target;

const LIMIT: Duration = Duration::from_secs(5);
const MAX_PLAN: usize = 1 << 20;
/// Previews running at once, over all targets: each holds an upstream connection, and a
/// burst of holds must not use up the target's connection slots.
const MAX_CONCURRENT: usize = 4;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT);

pub async fn preview(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    statement: &str,
) -> Impact {
    // Wait a little for a slot; an approver reading the request later still benefits.
    let Ok(Ok(_slot)) = tokio::time::timeout(LIMIT, SLOTS.acquire()).await else {
        return Impact {
            estimated_rows: None,
            error: Some("skipped: too many previews in flight".into()),
        };
    };
    let r = tokio::time::timeout(LIMIT, explain(target, tls, statement)).await;
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
) -> Result<f64, String> {
    let params = [("application_name".to_string(), "jitgate-impact".to_string())];
    let mut up = upstream::connect(target, tls, &params)
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
    body.put_i16(0);
    msg::frame(&mut out, b'P', &body);
    msg::frame(&mut out, b'B', &[0, 0, 0, 0, 0, 0, 0, 0]);
    msg::frame(&mut out, b'E', &[0, 0, 0, 0, 0]);
    msg::frame(&mut out, b'S', &[]);
    up.stream.write_all(&out).await.map_err(|e| e.to_string())?;
    up.stream.flush().await.map_err(|e| e.to_string())?;
    let mut plan = None;
    let mut error = None;
    loop {
        let tag = up.stream.read_u8().await.map_err(|e| e.to_string())?;
        let len = up.stream.read_i32().await.map_err(|e| e.to_string())?;
        if !(4..=MAX_PLAN as i32).contains(&len) {
            return Err("bad message from the server".into());
        }
        let mut b = vec![0u8; len as usize - 4];
        up.stream
            .read_exact(&mut b)
            .await
            .map_err(|e| e.to_string())?;
        match tag {
            // DataRow: one column, the JSON plan.
            b'D' => {
                let n = msg::i32_at(&b, 2).unwrap_or(-1);
                if let Some(v) = usize::try_from(n).ok().and_then(|n| b.get(6..6 + n)) {
                    plan = Some(String::from_utf8_lossy(v).into_owned());
                }
            }
            b'E' => {
                let f = msg::fields(&b).unwrap_or_default();
                error = Some(msg::field(&f, b'M').unwrap_or("EXPLAIN failed").to_string());
            }
            b'Z' => break,
            _ => {}
        }
    }
    let mut bye = BytesMut::new();
    msg::frame(&mut bye, b'X', &[]);
    let _ = up.stream.write_all(&bye).await;
    if let Some(e) = error {
        return Err(e);
    }
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
