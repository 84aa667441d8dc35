//! The per-target catalog snapshot: which functions, operators and types a Postgres target
//! defines outside `pg_catalog` and `information_schema`, and whether someone created a
//! cast. The classifier checks every read against it (`policy/sql/target.rs`), because a
//! built-in's name is pure only where it resolves to the built-in.
//!
//! Invariants:
//! - Read on a separate, short-lived upstream connection (never a client's session), with
//!   one simple query, `search_path` pinned to `pg_catalog` by the start-up packet (so a
//!   role's setting cannot redirect the query's own operators), bounded in time and rows.
//! - When: at a target's first session (awaited before the session's first statement),
//!   every [`REFRESH_EVERY`], and once every schema change permitted through jitgate on the
//!   target has ended its transaction ([`SchemaChange`]). A snapshot read that overlaps a
//!   permitted schema change is discarded (see `TargetCaches::set_catalog`).
//! - Fail closed: a read that fails leaves the target `Unavailable`, and its reads that
//!   resolve any name are `unknown` until one succeeds.
//! - Known limit: objects created without jitgate (another connection, user code run by a
//!   trigger) are seen at the next periodic read at the latest.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio_rustls::rustls;

use super::{msg, side_query, upstream};
use crate::app::AppState;
use crate::config::Target;
use crate::policy::sql::TargetObjects;

/// How often a target's snapshot is read again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The longest a snapshot read may take.
const READ_LIMIT: Duration = Duration::from_secs(5);
/// The most rows a snapshot may have (beyond: the read fails, closed).
const MAX_ROWS: usize = 1_000_000;
/// The longest message the snapshot query's answer may hold.
const MAX_MESSAGE: usize = 64 * 1024;

/// One row per object name: its kind (`f`unction, `o`perator, `t`ype, `c`ast) and name (for
/// a cast, its context: `e`, `a` or `i`). Casts made after initdb have an OID of at least
/// FirstNormalObjectId (16384).
const QUERY: &str = "\
SELECT 'f', p.proname::text FROM pg_catalog.pg_proc p \
 JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION SELECT 'o', o.oprname::text FROM pg_catalog.pg_operator o \
 JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace \
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION SELECT 't', t.typname::text FROM pg_catalog.pg_type t \
 JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION SELECT 'c', c.castcontext::text FROM pg_catalog.pg_cast c WHERE c.oid >= 16384";

/// Reads `target`'s snapshot.
pub async fn read(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<TargetObjects, String> {
    match tokio::time::timeout(READ_LIMIT, read_now(target, tls)).await {
        Ok(r) => r,
        Err(_) => Err("reading the target's catalog timed out".into()),
    }
}

async fn read_now(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<TargetObjects, String> {
    let params = [
        (
            "application_name".to_string(),
            "jitgate-catalog".to_string(),
        ),
        ("search_path".to_string(), "pg_catalog".to_string()),
    ];
    let up = upstream::connect(target, tls, &params)
        .await
        .map_err(|e| format!("cannot read the target's catalog: {e}"))?;
    let mut out = BytesMut::new();
    msg::frame(&mut out, b'Q', format!("{QUERY}\0").as_bytes());
    let mut objects = TargetObjects::default();
    let mut rows = 0usize;
    side_query::exchange(up, &out, MAX_MESSAGE, |tag, body| {
        if tag == b'D' {
            rows += 1;
            if rows > MAX_ROWS {
                return Err("the target's catalog has too many objects".into());
            }
            let (kind, name) = row(body).ok_or("the target's catalog: a malformed row")?;
            add(&mut objects, kind, name);
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("reading the target's catalog failed: {e}"))?;
    Ok(objects)
}

/// The two text columns of a DataRow.
fn row(body: &[u8]) -> Option<(&str, &str)> {
    let mut at = 2;
    let mut column = || {
        let n = usize::try_from(msg::i32_at(body, at)?).ok()?;
        let v = body.get(at + 4..at + 4 + n)?;
        at += 4 + n;
        std::str::from_utf8(v).ok()
    };
    let kind = column()?;
    let name = column()?;
    Some((kind, name))
}

fn add(objects: &mut TargetObjects, kind: &str, name: &str) {
    match kind {
        "f" => {
            objects.functions.insert(name.to_string());
        }
        "o" => {
            objects.operators.insert(name.to_string());
        }
        "t" => {
            objects.types.insert(name.to_string());
        }
        _ => {
            objects.user_casts = true;
            if name != "e" {
                objects.user_implicit_casts = true;
            }
        }
    }
}

/// Reads `target`'s snapshot and puts it in force (unless a schema change overlapped it).
pub async fn refresh(app: &AppState, target: &Target, tls: Option<&Arc<rustls::ClientConfig>>) {
    let ticket = app.cache.catalog_ticket(&target.name);
    let snapshot = read(target, tls).await;
    if let Err(e) = &snapshot {
        tracing::warn!(target = %target.name, "{e}");
    }
    app.cache.set_catalog(&target.name, ticket, snapshot);
}

/// Before a target's first session relays anything: read its snapshot once, and start the
/// periodic refresh.
pub async fn first_use(
    app: &Arc<AppState>,
    target: &Arc<Target>,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    if app.cache.catalog_read_once(&target.name) {
        return;
    }
    refresh(app, target, tls.as_ref()).await;
    if app.cache.catalog_watch_starts(&target.name) {
        tokio::spawn(every_few_minutes(Arc::downgrade(app), target.name.clone()));
    }
}

/// Re-reads the target's snapshot every [`REFRESH_EVERY`] while the process and the target
/// (in the config in force) exist.
async fn every_few_minutes(app: Weak<AppState>, name: String) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        let Some(app) = app.upgrade() else { return };
        let Some(target) = app.config().target(&name).cloned() else {
            return;
        };
        let tls = upstream::tls_config(&target).ok().flatten();
        refresh(&app, &target, tls.as_ref()).await;
    }
}

/// A schema change permitted in one session, until its transaction ends: while it lives the
/// target's reads that resolve names are not proven; dropping it (the session saw its
/// transaction end, or ended) reads the snapshot again once no other change is in flight.
pub struct SchemaChange {
    app: Weak<AppState>,
    target: Arc<Target>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl SchemaChange {
    pub fn begin(
        app: &Arc<AppState>,
        target: &Arc<Target>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> SchemaChange {
        app.cache.schema_change_begins(&target.name);
        SchemaChange {
            app: Arc::downgrade(app),
            target: target.clone(),
            tls,
        }
    }
}

impl Drop for SchemaChange {
    fn drop(&mut self) {
        let Some(app) = self.app.upgrade() else {
            return;
        };
        if !app.cache.schema_change_ends(&self.target.name) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let target = self.target.clone();
        let tls = self.tls.take();
        runtime.spawn(async move { refresh(&app, &target, tls.as_ref()).await });
    }
}
