//! Drivers with protocol code of their own, through jitgate against PostgreSQL 15: asyncpg
//! (Python, its own binary protocol implementation), psycopg 3 (libpq through Python) and
//! node-postgres (`pg` from npm). tokio-postgres is covered by tests/pg_driver.rs.
//!
//! Each driver runs its script in tests/drivers/ (one `ok STEP` line per step) against the
//! approvals fixture (tests/support/api.rs) as alice:
//! - `queries`: simple and extended queries with parameters, and a named prepared statement;
//! - `transaction`: a held write that bob approves through the API (it commits) and one he
//!   denies (42501; the script rolls back, and the allowed insert before it is gone too). Both
//!   the insert and the update carry parameters, as applications send them: the update must
//!   be judged as itself, not as the insert the session ran before it;
//! - `copy`: COPY FROM STDIN into `log` and COPY … TO STDOUT (asyncpg, psycopg; node-postgres
//!   has no COPY of its own — that is the separate pg-copy-streams package — so it skips this);
//! - `notify`: LISTEN, a NOTIFY of its own (a write: bob approves it) and the notification's pid
//!   equal to the backend pid the driver got in BackendKeyData;
//! - `cancel`: `pg_sleep(30)` cancelled with the driver's own cancel (a CancelRequest with the
//!   key from BackendKeyData), seen running first from a second connection.
//!
//! The Rust side approves and denies while the script waits, then checks the table itself. As a
//! control, each script also runs straight against PostgreSQL (every step but `transaction`,
//! which needs the approver): a step that passes there and fails through jitgate is a jitgate
//! bug. The packages are installed by `support::drivers` (pip and npm into the target dir);
//! to run a script by hand: `PYTHONPATH=<target>/tmp/driver-deps/python PGHOST=… PGPORT=…
//! PGUSER=… PGPASSWORD=… PGDATABASE=… python3 tests/drivers/asyncpg_client.py queries copy`
//! (node: `NODE_PATH=<target>/tmp/driver-deps/node/node_modules node tests/drivers/…`).

#[path = "support/api.rs"]
mod api;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use api::{Api, Fixture};
use support::cluster::role_password;
use support::drivers::{Connection, Driver};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, output_text, run_timeout};

/// Longer than any script needs: three held statements and a cancelled `pg_sleep(30)`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// The statements the scripts have held, in the order they run, and bob's decision for each.
const HELD: &[(&str, Decision)] = &[
    ("UPDATE t SET v = $1 WHERE id = 1", Decision::Approve),
    ("UPDATE t SET v = $1 WHERE id = 2", Decision::Deny),
    ("NOTIFY own_channel, 'from me'", Decision::Approve),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Approve,
    Deny,
}

/// bob on a thread: decides each of alice's pending requests as [`HELD`] says (an unexpected
/// one is denied) and records what he saw, until stopped.
struct Approver {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(String, Decision)>>,
}

impl Approver {
    fn start(bob: Api) -> Approver {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                for request in bob.pending(Some(ALICE)) {
                    let id = request["id"].as_str().expect("request id").to_string();
                    let statement = request["statement"].as_str().unwrap_or("").to_string();
                    let decision = HELD
                        .iter()
                        .find(|(held, _)| *held == statement)
                        .map_or(Decision::Deny, |(_, decision)| *decision);
                    match decision {
                        Decision::Approve => bob.approve_ok(&id, "driver test", None),
                        Decision::Deny => bob.deny_ok(&id, "driver test says no"),
                    };
                    seen.push((statement, decision));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        });
        Approver { stop, thread }
    }

    /// Stops bob; returns the statements he decided, in order.
    fn stop(self) -> Vec<(String, Decision)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the approver thread panicked")
    }
}

/// Runs `driver`'s script with `steps` against `connection`; asserts it succeeded and printed
/// `ok STEP` for each step, in order.
fn run_script(driver: Driver, connection: &Connection, steps: &[&str]) {
    let out = run_timeout(driver.command(connection).args(steps), None, SCRIPT_TIMEOUT);
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = steps.iter().map(|step| format!("ok {step}")).collect();
    assert!(
        out.status.success() && printed == expected,
        "{} against {}:{} as {}: expected {expected:?}\n{}",
        driver.script(),
        connection.host,
        connection.port,
        connection.user,
        output_text(&out)
    );
}

/// The values in `log`, in order, comma-separated.
fn log_values(fx: &Fixture) -> String {
    fx.sql("SELECT coalesce(string_agg(n::text, ',' ORDER BY n), '') FROM log;")
}

/// Every step through jitgate as alice, bob deciding the held statements; then the database.
fn through_jitgate(driver: Driver, steps: &[&str]) {
    let fx = Fixture::new("60s", 3);
    let connection = Connection {
        host: "127.0.0.1".into(),
        port: fx.env.jg.pg_port(),
        user: ALICE.into(),
        password: ALICE_PASSWORD.into(),
        database: APP_TARGET.into(),
    };
    let approver = Approver::start(fx.bob.clone());
    run_script(driver, &connection, steps);
    let decided = approver.stop();
    let expected: Vec<(String, Decision)> = HELD
        .iter()
        .map(|(statement, decision)| (statement.to_string(), *decision))
        .collect();
    assert_eq!(decided, expected, "the held statements and bob's decisions");
    // The approved update committed; the denied one and the insert before it did not.
    assert_eq!(fx.row("t", 1), Some(111), "the approved update");
    assert_eq!(fx.row("t", 2), Some(0), "the denied update changed the row");
    assert_eq!(fx.row("t", 3), Some(0));
    let copied = if steps.contains(&"copy") {
        "10,20,30,40"
    } else {
        ""
    };
    assert_eq!(log_values(&fx), copied, "log after the script");
    assert!(
        fx.env.jg.is_running(),
        "jitgate died\n{}",
        fx.env.jg.log_tail(60)
    );
}

/// The control: every step but `transaction` straight against PostgreSQL as role `app`.
fn directly(driver: Driver, steps: &[&str]) {
    let fx = Fixture::new("60s", 3);
    let connection = Connection {
        host: "127.0.0.1".into(),
        port: fx.env.cluster.port(),
        user: "app".into(),
        password: role_password("app").into(),
        database: fx.env.db.clone(),
    };
    run_script(driver, &connection, steps);
    let copied = if steps.contains(&"copy") {
        "10,20,30,40"
    } else {
        ""
    };
    assert_eq!(log_values(&fx), copied, "log after the script");
}

const PYTHON_STEPS: &[&str] = &["queries", "transaction", "copy", "notify", "cancel"];
const PYTHON_CONTROL_STEPS: &[&str] = &["queries", "copy", "notify", "cancel"];
const NODE_STEPS: &[&str] = &["queries", "transaction", "notify", "cancel"];
const NODE_CONTROL_STEPS: &[&str] = &["queries", "notify", "cancel"];

#[test]
fn asyncpg_through_jitgate() {
    through_jitgate(Driver::Asyncpg, PYTHON_STEPS);
}

#[test]
fn asyncpg_directly() {
    directly(Driver::Asyncpg, PYTHON_CONTROL_STEPS);
}

#[test]
fn psycopg_through_jitgate() {
    through_jitgate(Driver::Psycopg, PYTHON_STEPS);
}

#[test]
fn psycopg_directly() {
    directly(Driver::Psycopg, PYTHON_CONTROL_STEPS);
}

#[test]
fn node_pg_through_jitgate() {
    through_jitgate(Driver::NodePg, NODE_STEPS);
}

#[test]
fn node_pg_directly() {
    directly(Driver::NodePg, NODE_CONTROL_STEPS);
}
