//! Requests, approvals and grants in the state database: the rows and the atomic changes.
//!
//! Invariants:
//! - A decision is one transaction that locks the request row (`SELECT … FOR UPDATE`), reads
//!   its approvals, applies the same rules as a single jitgate
//!   ([`crate::approval`]'s `apply_approval` / `apply_denial`) and writes the result: two
//!   approvers on two replicas are serialised by the row lock, so a request is decided once,
//!   and N-of-M counts the distinct approvers recorded in `jitgate_approvals` (unique per
//!   request and approver).
//! - A close (expiry, cancel) changes only a pending row (`WHERE state = 'pending'`); if a
//!   decision won, the decision stands and is what the waiter learns.
//! - Rows that do not parse (a class or state this binary does not know) are errors, never
//!   guessed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{GenericClient, Row};

use super::StateError;
use crate::approval::{
    Answer, ApprovalRecord, DecideError, Decider, Entry, Grant, GrantScope, Impact, RequestView,
    ScopeKind, State, apply_approval, apply_denial, candidate, new_id, unix_secs,
};
use crate::policy::Class;
use crate::policy::rules::Approver;

const REQUEST_COLUMNS: &str = "id, node, session, state, user_name, target, protocol, class, \
     statement, tables, functions, rule, source, runs_prepared, approvers, approvals_required, \
     max_grant_secs, created_at, expires_at, decided_by, reason, grant_id, estimated_rows, \
     impact_error";

fn bad(what: &str, value: &str) -> StateError {
    StateError::Schema(format!("unexpected {what} {value:?} in the state database"))
}

fn parse_approver(s: &str) -> Result<Approver, StateError> {
    match s.split_once(':') {
        Some(("user", n)) => Ok(Approver::User(n.to_string())),
        Some(("group", n)) => Ok(Approver::Group(n.to_string())),
        _ => Err(bad("approver", s)),
    }
}

fn parse_scope(s: &str) -> Result<ScopeKind, StateError> {
    [ScopeKind::Shape, ScopeKind::Tables, ScopeKind::Exact]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| bad("grant scope", s))
}

fn secs_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// One approval row: the record and the scope it asked for.
type ApprovalRow = (ApprovalRecord, ScopeKind);

fn approval_from(row: &Row) -> Result<(String, ApprovalRow), StateError> {
    let grant_secs: Option<i64> = row.try_get("grant_secs")?;
    let scope: String = row.try_get("scope")?;
    Ok((
        row.try_get("request")?,
        (
            ApprovalRecord {
                by: row.try_get("approver")?,
                at: u64::try_from(row.try_get::<_, i64>("at")?).unwrap_or(0),
                reason: row.try_get("reason")?,
                grant_secs: grant_secs.and_then(|s| u64::try_from(s).ok()),
            },
            parse_scope(&scope)?,
        ),
    ))
}

fn entry_from(row: &Row, approvals: Vec<ApprovalRow>) -> Result<Entry, StateError> {
    let state: String = row.try_get("state")?;
    let class: String = row.try_get("class")?;
    let approvers: Vec<String> = row.try_get("approvers")?;
    let approvals_required: i32 = row.try_get("approvals_required")?;
    let max_grant: i64 = row.try_get("max_grant_secs")?;
    let (records, scopes): (Vec<ApprovalRecord>, Vec<ScopeKind>) = approvals.into_iter().unzip();
    let view = RequestView {
        id: row.try_get("id")?,
        state: State::parse(&state).ok_or_else(|| bad("state", &state))?,
        user: row.try_get("user_name")?,
        target: row.try_get("target")?,
        protocol: row.try_get("protocol")?,
        class: Class::parse(&class).ok_or_else(|| bad("class", &class))?,
        statement: row.try_get("statement")?,
        tables: row.try_get("tables")?,
        rule: row.try_get("rule")?,
        source: row.try_get("source")?,
        session: row.try_get("session")?,
        node: Some(row.try_get("node")?),
        created_at: u64::try_from(row.try_get::<_, i64>("created_at")?).unwrap_or(0),
        expires_at: u64::try_from(row.try_get::<_, i64>("expires_at")?).unwrap_or(0),
        approvals: records,
        approvals_required: u32::try_from(approvals_required).unwrap_or(1),
        decided_by: row.try_get("decided_by")?,
        reason: row.try_get("reason")?,
        grant: row.try_get("grant_id")?,
        impact: Impact {
            estimated_rows: row.try_get("estimated_rows")?,
            error: row.try_get("impact_error")?,
        },
    };
    Ok(Entry::mirror(
        view,
        row.try_get("functions")?,
        scopes,
        row.try_get("runs_prepared")?,
        approvers
            .iter()
            .map(|a| parse_approver(a))
            .collect::<Result<_, _>>()?,
        Duration::from_secs(u64::try_from(max_grant).unwrap_or(0)),
    ))
}

/// Commit a new request (before its user is told it is held).
pub async fn insert(c: &impl GenericClient, e: &Entry) -> Result<(), StateError> {
    let v = &e.view;
    let approvers: Vec<String> = e.approvers.iter().map(|a| a.to_string()).collect();
    c.execute(
        "INSERT INTO jitgate_requests (id, node, session, user_name, target, protocol, class, \
         statement, tables, functions, rule, source, runs_prepared, approvers, \
         approvals_required, max_grant_secs, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        &[
            &v.id,
            &v.node.as_deref().unwrap_or_default(),
            &v.session,
            &v.user,
            &v.target,
            &v.protocol,
            &v.class.as_str(),
            &v.statement,
            &v.tables,
            &e.functions,
            &v.rule,
            &v.source,
            &e.runs_prepared,
            &approvers,
            &i32::try_from(v.approvals_required).unwrap_or(i32::MAX),
            &secs_i64(e.max_grant.as_secs()),
            &secs_i64(v.created_at),
            &secs_i64(v.expires_at),
        ],
    )
    .await?;
    Ok(())
}

/// Requests by a condition on `jitgate_requests` (`$1`…), each with its approvals.
async fn requests_where(
    c: &impl GenericClient,
    condition: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Entry>, StateError> {
    let rows = c
        .query(
            &format!("SELECT {REQUEST_COLUMNS} FROM jitgate_requests WHERE {condition}"),
            params,
        )
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut approvals: std::collections::HashMap<String, Vec<ApprovalRow>> = Default::default();
    if !ids.is_empty() {
        let approval_rows = c
            .query(
                "SELECT request, approver, at, reason, grant_secs, scope FROM jitgate_approvals \
                 WHERE request = ANY($1) ORDER BY position",
                &[&ids],
            )
            .await?;
        for row in &approval_rows {
            let (request, a) = approval_from(row)?;
            approvals.entry(request).or_default().push(a);
        }
    }
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            entry_from(row, approvals.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// The live grant (not revoked, not expired) of request `e`, if it has one.
async fn live_grant(c: &impl GenericClient, e: &Entry) -> Result<Option<Grant>, StateError> {
    let Some(id) = &e.view.grant else {
        return Ok(None);
    };
    let row = c
        .query_opt(
            "SELECT scope, granted_by, created_at_ms, expires_at_ms FROM jitgate_grants \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at_ms > $2",
            &[id, &millis(SystemTime::now())],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let scope: String = row.try_get("scope")?;
    let scope = GrantScope::for_request(&candidate(e), parse_scope(&scope)?)
        .map_err(|why| bad("grant scope", why))?;
    Ok(Some(Grant::restore(
        id.clone(),
        scope,
        e.view.id.clone(),
        row.try_get("granted_by")?,
        e.approvers.clone(),
        from_millis(row.try_get("created_at_ms")?),
        from_millis(row.try_get("expires_at_ms")?),
    )))
}

/// One request with its live grant.
pub async fn load(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<(Entry, Option<Grant>)>, StateError> {
    let Some(e) = requests_where(c, "id = $1", &[&id]).await?.pop() else {
        return Ok(None);
    };
    let grant = live_grant(c, &e).await?;
    Ok(Some((e, grant)))
}

/// Requests `ids` (those that exist), each with its live grant.
pub async fn load_many(
    c: &impl GenericClient,
    ids: &[String],
) -> Result<Vec<(Entry, Option<Grant>)>, StateError> {
    let entries = requests_where(c, "id = ANY($1)", &[&ids]).await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let grant = live_grant(c, &e).await?;
        out.push((e, grant));
    }
    Ok(out)
}

/// What a replica mirrors after (re)connecting: pending requests, those changed in the last
/// `recent`, and every live grant.
pub async fn snapshot(
    c: &impl GenericClient,
    recent: Duration,
) -> Result<Vec<(Entry, Option<Grant>)>, StateError> {
    let since = secs_i64(unix_secs(SystemTime::now()).saturating_sub(recent.as_secs()));
    let entries = requests_where(
        c,
        "state = 'pending' OR created_at >= $1 OR grant_id IN \
         (SELECT id FROM jitgate_grants WHERE revoked_at IS NULL AND expires_at_ms > $2) \
         ORDER BY created_at, id LIMIT 10000",
        &[&since, &millis(SystemTime::now())],
    )
    .await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let grant = live_grant(c, &e).await?;
        out.push((e, grant));
    }
    Ok(out)
}

/// Whether grant `id` is live in the store, and the request it came from.
pub async fn grant_request(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<(String, bool)>, StateError> {
    let row = c
        .query_opt(
            "SELECT request, revoked_at IS NULL AND expires_at_ms > $2 FROM jitgate_grants \
             WHERE id = $1",
            &[&id, &millis(SystemTime::now())],
        )
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    })
}

/// Why a decision failed: the rules said no, or the store did.
pub enum DecideFailure {
    Rules(DecideError),
    Store(StateError),
}

impl From<StateError> for DecideFailure {
    fn from(e: StateError) -> Self {
        DecideFailure::Store(e)
    }
}

impl From<tokio_postgres::Error> for DecideFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        DecideFailure::Store(e.into())
    }
}

/// Approve or deny request `id` as `who`, atomically (see the module doc). Returns the
/// request as decided now, with the grant it made.
pub async fn decide(
    client: &mut tokio_postgres::Client,
    id: &str,
    who: &Decider,
    answer: &Answer,
) -> Result<(Entry, Option<Grant>), DecideFailure> {
    let tx = client.transaction().await?;
    let mut e = requests_where(&tx, "id = $1 FOR UPDATE", &[&id])
        .await?
        .pop()
        .ok_or(DecideFailure::Rules(DecideError::NotFound))?;
    let now = SystemTime::now();
    let mut grant = None;
    match answer {
        Answer::Approve {
            reason,
            grant_secs,
            scope,
        } => {
            let step = apply_approval(&mut e, who, reason, *grant_secs, *scope, unix_secs(now))
                .map_err(DecideFailure::Rules)?;
            tx.execute(
                "INSERT INTO jitgate_approvals (request, approver, at, reason, grant_secs, scope) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &who.name,
                    &secs_i64(unix_secs(now)),
                    reason,
                    &grant_secs.map(secs_i64),
                    &scope.as_str(),
                ],
            )
            .await?;
            if let crate::approval::Step::Complete { by, grant: made } = step {
                if let Some((scope, ttl)) = made {
                    let g = Grant::restore(
                        new_id("g"),
                        scope,
                        id.to_string(),
                        by.clone(),
                        e.approvers.clone(),
                        now,
                        now + ttl,
                    );
                    e.view.grant = Some(g.id.clone());
                    grant = Some(g);
                }
                e.view.state = State::Approved;
                finish_row(&tx, &e).await?;
                if let Some(g) = &grant {
                    tx.execute(
                        "INSERT INTO jitgate_grants (id, request, scope, approved_by, granted_by, \
                         created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[
                            &g.id,
                            &id,
                            &g.scope.scope.as_str(),
                            &g.approved_by,
                            &g.granted_by,
                            &millis(g.created),
                            &millis(g.expires.unwrap_or(now)),
                        ],
                    )
                    .await?;
                }
            }
        }
        Answer::Deny { reason } => {
            apply_denial(&mut e, who, reason).map_err(DecideFailure::Rules)?;
            e.view.state = State::Denied;
            finish_row(&tx, &e).await?;
        }
    }
    tx.commit().await?;
    Ok((e, grant))
}

/// Write a decided request's outcome; the row is locked and pending.
async fn finish_row(c: &impl GenericClient, e: &Entry) -> Result<(), StateError> {
    c.execute(
        "UPDATE jitgate_requests SET state = $2, decided_by = $3, reason = $4, grant_id = $5, \
         updated_at = clock_timestamp() WHERE id = $1 AND state = 'pending'",
        &[
            &e.view.id,
            &e.view.state.as_str(),
            &e.view.decided_by,
            &e.view.reason,
            &e.view.grant,
        ],
    )
    .await?;
    Ok(())
}

/// End request `id` with `state` if it is still pending; returns it as the store has it.
pub async fn close(
    c: &impl GenericClient,
    id: &str,
    state: State,
    reason: &str,
) -> Result<Option<(Entry, Option<Grant>)>, StateError> {
    c.execute(
        "UPDATE jitgate_requests SET state = $2, reason = $3, updated_at = clock_timestamp() \
         WHERE id = $1 AND state = 'pending'",
        &[&id, &state.as_str(), &reason],
    )
    .await?;
    load(c, id).await
}

/// Store request `id`'s impact preview.
pub async fn set_impact(
    c: &impl GenericClient,
    id: &str,
    impact: &Impact,
) -> Result<(), StateError> {
    c.execute(
        "UPDATE jitgate_requests SET estimated_rows = $2, impact_error = $3 WHERE id = $1",
        &[&id, &impact.estimated_rows, &impact.error],
    )
    .await?;
    Ok(())
}

/// Revoke grant `id` if it is live; `false` if it no longer was.
pub async fn revoke(c: &impl GenericClient, id: &str, by: &str) -> Result<bool, StateError> {
    let n = c
        .execute(
            "UPDATE jitgate_grants SET revoked_at = clock_timestamp(), revoked_by = $2 \
             WHERE id = $1 AND revoked_at IS NULL AND expires_at_ms > $3",
            &[&id, &by, &millis(SystemTime::now())],
        )
        .await?;
    Ok(n == 1)
}

/// Cancel the pending requests of `node` with `reason`; returns them as cancelled.
pub async fn cancel_node(
    c: &impl GenericClient,
    node: &str,
    reason: &str,
) -> Result<Vec<Entry>, StateError> {
    let rows = c
        .query(
            "UPDATE jitgate_requests SET state = 'cancelled', reason = $2, \
             updated_at = clock_timestamp() WHERE node = $1 AND state = 'pending' RETURNING id",
            &[&node, &reason],
        )
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    requests_where(c, "id = ANY($1)", &[&ids]).await
}
