"""asyncpg through jitgate (or straight to PostgreSQL, as a control): one line per step.

Usage: python3 asyncpg_client.py STEP...   (steps: queries transaction copy notify cancel)
Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; no TLS.
Prints `ok STEP` after each step; on the first failure prints `FAILED STEP: why` on stderr and
exits 1. The `transaction` step expects the approver (tests/pg_drivers.rs) to approve
`UPDATE t SET v = $1 WHERE id = 1` and deny `UPDATE t SET v = $1 WHERE id = 2`.
asyncpg speaks the protocol itself: extended queries with binary parameters and results.
"""

import asyncio
import io
import os
import sys
import time

import asyncpg


def connect():
    return asyncpg.connect(
        host=os.environ["PGHOST"],
        port=int(os.environ["PGPORT"]),
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        database=os.environ["PGDATABASE"],
        ssl=False,
    )


def check(condition, what):
    if not condition:
        raise AssertionError(what)


async def queries(conn):
    # No arguments: the simple query protocol, two statements in one string.
    await conn.execute("SELECT 1; SELECT 2")
    # Arguments: Parse/Bind/Execute with binary parameters and results.
    check(await conn.fetchval("SELECT $1::int + $2::int", 40, 2) == 42, "$1 + $2")
    rows = await conn.fetch("SELECT id, v FROM t WHERE id <= $1 ORDER BY id", 2)
    check([tuple(r) for r in rows] == [(1, 0), (2, 0)], f"rows of t: {rows}")
    # A named prepared statement, executed twice.
    statement = await conn.prepare("SELECT v + $1 FROM t WHERE id = $2")
    check(await statement.fetchval(5, 1) == 5, "prepared, first run")
    check(await statement.fetchval(7, 3) == 7, "prepared, second run")


async def transaction(conn):
    # Held for approval; the approver approves it, then it runs and commits.
    async with conn.transaction():
        await conn.execute("UPDATE t SET v = $1 WHERE id = 1", 111)
    # Held and denied: 42501 aborts the transaction; the allowed insert before it (parameters too)
    # is rolled back.
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO log (n) VALUES ($1)", -1)
            await conn.execute("UPDATE t SET v = $1 WHERE id = 2", 222)
        raise AssertionError("the denied update succeeded")
    except asyncpg.PostgresError as error:
        check(error.sqlstate == "42501", f"denied update: {error.sqlstate} {error}")
    check(await conn.fetchval("SELECT v FROM t WHERE id = 2") == 0, "row 2 changed")


async def copy(conn):
    # COPY FROM STDIN, binary format (asyncpg's own encoder).
    result = await conn.copy_records_to_table("log", records=[(10,), (20,), (30,)], columns=["n"])
    check(result == "COPY 3", f"copy in: {result}")
    # COPY FROM STDIN, text format, from a file-like source.
    result = await conn.copy_to_table("log", source=io.BytesIO(b"40\n"), columns=["n"])
    check(result == "COPY 1", f"copy in from a file: {result}")
    # COPY TO STDOUT of a query with a parameter.
    chunks = []

    async def collect(data):
        chunks.append(data)

    result = await conn.copy_from_query(
        "SELECT n FROM log WHERE n >= $1 ORDER BY n", 10, output=collect
    )
    check(result == "COPY 4", f"copy out: {result}")
    check(b"".join(chunks) == b"10\n20\n30\n40\n", f"copied out: {chunks}")


async def notify(conn):
    own_pid = conn.get_server_pid()
    backend_pid = await conn.fetchval("SELECT pg_backend_pid()")
    check(own_pid == backend_pid, f"BackendKeyData pid {own_pid} is not pg_backend_pid() {backend_pid}")
    received = asyncio.get_running_loop().create_future()

    def on_notification(_conn, pid, channel, payload):
        if not received.done():
            received.set_result((pid, channel, payload))

    await conn.add_listener("own_channel", on_notification)
    await conn.execute("NOTIFY own_channel, 'from me'")
    pid, channel, payload = await asyncio.wait_for(received, 30)
    check((channel, payload) == ("own_channel", "from me"), f"notification {channel} {payload}")
    check(pid == own_pid, f"notification pid {pid} is not my backend pid {own_pid}")


async def wait_until_running(pid, sleeper):
    """Waits, on a second connection, until backend `pid` runs pg_sleep."""
    watcher = await connect()
    try:
        running = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        while await watcher.fetchval(running + " AND query LIKE '%pg_sleep%'", pid) == 0:
            check(not sleeper.done(), "pg_sleep ended before it was seen running")
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()


async def cancel(conn):
    # Cancelling the task makes asyncpg send a CancelRequest with the connection's key. The next
    # statement waits until the cancelled one has ended, so a quick answer proves the cancel.
    pid = conn.get_server_pid()
    started = time.monotonic()
    sleeper = asyncio.ensure_future(conn.fetchval("SELECT pg_sleep(30)"))
    await wait_until_running(pid, sleeper)
    sleeper.cancel()
    try:
        await sleeper
        raise AssertionError("pg_sleep was not cancelled")
    except asyncio.CancelledError:
        pass
    check(await conn.fetchval("SELECT 'after cancel'") == "after cancel", "after cancel")
    elapsed = time.monotonic() - started
    check(elapsed < 20, f"the cancelled pg_sleep(30) ran {elapsed:.1f} s")


STEPS = {
    "queries": queries,
    "transaction": transaction,
    "copy": copy,
    "notify": notify,
    "cancel": cancel,
}


async def main(steps):
    try:
        conn = await connect()
    except Exception as error:  # noqa: BLE001 - any failure names its step
        print(f"FAILED connect: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    for step in steps:
        try:
            await STEPS[step](conn)
        except Exception as error:  # noqa: BLE001 - any failure names its step
            print(f"FAILED {step}: {type(error).__name__}: {error}", file=sys.stderr)
            conn.terminate()
            return 1
        print(f"ok {step}", flush=True)
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
