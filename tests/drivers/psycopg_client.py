"""psycopg 3 (libpq underneath) through jitgate (or straight to PostgreSQL, as a control).

Usage: python3 psycopg_client.py STEP...   (steps: queries transaction copy notify cancel)
Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; no TLS.
Prints `ok STEP` after each step; on the first failure prints `FAILED STEP: why` on stderr and
exits 1. The `transaction` step expects the approver (tests/pg_drivers.rs) to approve
`UPDATE t SET v = $1 WHERE id = 1` and deny `UPDATE t SET v = $1 WHERE id = 2`.
"""

import os
import sys
import threading
import time

import psycopg
from psycopg import errors


def connect(**options):
    return psycopg.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        dbname=os.environ["PGDATABASE"],
        sslmode="disable",
        **options,
    )


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def value(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def queries(conn):
    # No parameters: the simple query protocol, two statements in one string.
    cursor = conn.execute("SELECT 1; SELECT 2")
    check(cursor.fetchone() == (1,), "first result")
    check(cursor.nextset() and cursor.fetchone() == (2,), "second result")
    # Parameters: Parse/Bind/Execute, text and binary.
    check(value(conn, "SELECT %s::int + %s::int", (40, 2)) == 42, "%s + %s")
    rows = conn.cursor(binary=True).execute("SELECT id, v FROM t WHERE id <= %s ORDER BY id", (2,))
    check(rows.fetchall() == [(1, 0), (2, 0)], "rows of t")
    # A named prepared statement (prepare=True), executed twice.
    for add, row in [(5, 1), (7, 3)]:
        got = conn.execute("SELECT v + %s FROM t WHERE id = %s", (add, row), prepare=True)
        check(got.fetchone() == (add,), f"prepared, row {row}")


def transaction(conn):
    # Held for approval; the approver approves it, then it runs and commits.
    with conn.transaction():
        conn.execute("UPDATE t SET v = %s WHERE id = 1", (111,))
    # Held and denied: 42501 aborts the transaction; the allowed insert before it (parameters too)
    # is rolled back.
    try:
        with conn.transaction():
            conn.execute("INSERT INTO log (n) VALUES (%s)", (-1,))
            conn.execute("UPDATE t SET v = %s WHERE id = 2", (222,))
        raise AssertionError("the denied update succeeded")
    except psycopg.Error as error:
        check(error.sqlstate == "42501", f"denied update: {error.sqlstate} {error}")
    check(value(conn, "SELECT v FROM t WHERE id = 2") == 0, "row 2 changed")


def copy(conn):
    with conn.cursor() as cursor:
        with cursor.copy("COPY log (n) FROM STDIN") as copy_in:
            for n in (10, 20, 30):
                copy_in.write_row((n,))
        check(cursor.rowcount == 3, f"copy in: {cursor.rowcount} rows")
        with cursor.copy("COPY log (n) FROM STDIN") as copy_in:
            copy_in.write(b"40\n")
        with cursor.copy("COPY (SELECT n FROM log WHERE n >= 10 ORDER BY n) TO STDOUT") as out:
            copied = b"".join(bytes(block) for block in out)
        check(copied == b"10\n20\n30\n40\n", f"copied out: {copied}")


def notify(conn):
    own_pid = conn.info.backend_pid
    backend_pid = value(conn, "SELECT pg_backend_pid()")
    check(own_pid == backend_pid, f"BackendKeyData pid {own_pid} is not pg_backend_pid() {backend_pid}")
    conn.execute("LISTEN own_channel")
    conn.execute("NOTIFY own_channel, 'from me'")
    received = list(conn.notifies(timeout=30, stop_after=1))
    check(len(received) == 1, "no notification within 30 s")
    got = received[0]
    check((got.channel, got.payload) == ("own_channel", "from me"), f"notification {got}")
    check(got.pid == own_pid, f"notification pid {got.pid} is not my backend pid {own_pid}")


def wait_until_running(pid):
    """Waits, on a second connection, until backend `pid` runs pg_sleep."""
    with connect(autocommit=True) as watcher:
        running = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
        deadline = time.monotonic() + 30
        while value(watcher, running + " AND query LIKE '%%pg_sleep%%'", (pid,)) == 0:
            check(time.monotonic() < deadline, "pg_sleep never seen running")
            time.sleep(0.05)


def cancel(conn):
    # conn.cancel_safe() sends a CancelRequest with the key libpq got in BackendKeyData.
    canceller = threading.Thread(target=lambda: (wait_until_running(conn.info.backend_pid),
                                                 conn.cancel_safe()))
    started = time.monotonic()
    canceller.start()
    try:
        conn.execute("SELECT pg_sleep(30)")
        raise AssertionError("pg_sleep was not cancelled")
    except errors.QueryCanceled as error:
        check(error.sqlstate == "57014", f"cancelled with {error.sqlstate}")
    finally:
        canceller.join()
    elapsed = time.monotonic() - started
    check(elapsed < 20, f"the cancelled pg_sleep(30) ran {elapsed:.1f} s")
    check(value(conn, "SELECT 'after cancel'") == "after cancel", "after cancel")


STEPS = {
    "queries": queries,
    "transaction": transaction,
    "copy": copy,
    "notify": notify,
    "cancel": cancel,
}


def main(steps):
    try:
        conn = connect(autocommit=True)
    except Exception as error:  # noqa: BLE001 - any failure names its step
        print(f"FAILED connect: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    with conn:
        for step in steps:
            try:
                STEPS[step](conn)
            except Exception as error:  # noqa: BLE001 - any failure names its step
                print(f"FAILED {step}: {type(error).__name__}: {error}", file=sys.stderr)
                return 1
            print(f"ok {step}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
