//! The state database's schema, created and migrated by jitgate on start.
//!
//! Invariants:
//! - [`MIGRATIONS`] is append-only: a released migration is never edited, a change is a new
//!   entry with the next version. `jitgate_schema_migrations` records each version applied.
//! - [`migrate`] runs in ONE transaction under `pg_advisory_xact_lock`, so replicas starting
//!   at once apply each migration exactly once (the second waits for the first, then finds
//!   nothing left to do), and a failed migration leaves nothing half-applied.
//! - A database migrated by a newer jitgate (a version this binary does not know) is refused:
//!   an older replica must not act on a schema it does not understand.
//! - Every change to a request, an approval or a grant sends a NOTIFY on [`CHANNEL`] (by
//!   trigger, so no code path can forget it): `r:<request id>` or `g:<grant id>`.

use tokio_postgres::Client;

use super::StateError;

/// The NOTIFY channel every replica LISTENs on.
pub const CHANNEL: &str = "jitgate_state";

/// The advisory lock key that serialises migrations ("jitgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x006a_6974_6761_7465;

/// One step of the schema.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in version order. APPEND ONLY.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "nodes, requests, approvals and grants",
        sql: STATE_V1,
    },
    Migration {
        version: 2,
        name: "the audit trail shipped by each node",
        sql: super::shipping::SCHEMA_V2,
    },
];

const STATE_V1: &str = r#"
CREATE TABLE jitgate_nodes (
    node text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    stopped_at timestamptz
);

CREATE TABLE jitgate_requests (
    id text PRIMARY KEY,
    node text NOT NULL,
    session text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    user_name text NOT NULL,
    target text NOT NULL,
    protocol text NOT NULL,
    class text NOT NULL,
    statement text NOT NULL,
    tables text[] NOT NULL,
    functions text[] NOT NULL,
    rule text NOT NULL,
    source text NOT NULL,
    runs_prepared boolean NOT NULL,
    approvers text[] NOT NULL,
    approvals_required integer NOT NULL CHECK (approvals_required >= 1),
    max_grant_secs bigint NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    decided_by text,
    reason text,
    grant_id text,
    estimated_rows double precision,
    impact_error text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX jitgate_requests_pending ON jitgate_requests (node) WHERE state = 'pending';
CREATE INDEX jitgate_requests_created ON jitgate_requests (created_at, id);

CREATE TABLE jitgate_approvals (
    request text NOT NULL REFERENCES jitgate_requests (id) ON DELETE CASCADE,
    approver text NOT NULL,
    at bigint NOT NULL,
    reason text NOT NULL,
    grant_secs bigint,
    scope text NOT NULL CHECK (scope IN ('shape', 'tables', 'exact')),
    position bigserial NOT NULL,
    PRIMARY KEY (request, approver)
);

CREATE TABLE jitgate_grants (
    id text PRIMARY KEY,
    request text NOT NULL UNIQUE REFERENCES jitgate_requests (id) ON DELETE CASCADE,
    scope text NOT NULL CHECK (scope IN ('shape', 'tables', 'exact')),
    approved_by text NOT NULL,
    granted_by text[] NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    revoked_at timestamptz,
    revoked_by text
);
CREATE INDEX jitgate_grants_live ON jitgate_grants (expires_at_ms) WHERE revoked_at IS NULL;

CREATE FUNCTION jitgate_notify_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jitgate_state', 'r:' || NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER jitgate_requests_notify AFTER INSERT OR UPDATE ON jitgate_requests
    FOR EACH ROW EXECUTE FUNCTION jitgate_notify_request();

CREATE FUNCTION jitgate_notify_approval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jitgate_state', 'r:' || NEW.request);
    RETURN NULL;
END $$;
CREATE TRIGGER jitgate_approvals_notify AFTER INSERT ON jitgate_approvals
    FOR EACH ROW EXECUTE FUNCTION jitgate_notify_approval();

CREATE FUNCTION jitgate_notify_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jitgate_state', 'g:' || NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER jitgate_grants_notify AFTER INSERT OR UPDATE ON jitgate_grants
    FOR EACH ROW EXECUTE FUNCTION jitgate_notify_grant();
"#;

/// The newest version this binary knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Bring the schema to [`latest_version`]; returns the versions applied now (empty when it
/// already was). See the module doc for the locking.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, StateError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS jitgate_schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM jitgate_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(newer) = applied
        .iter()
        .copied()
        .filter(|v| *v > latest_version())
        .max()
    {
        return Err(StateError::Schema(format!(
            "the state database has schema version {newer}, newer than this jitgate knows ({}); \
             upgrade this replica",
            latest_version()
        )));
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            StateError::Schema(format!("migration {} ({}): {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO jitgate_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        done.push(m.version);
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_are_unique() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.first(), Some(&1));
    }
}
