#!/usr/bin/env python3
"""Open N authenticated Postgres sessions and keep them idle (used by bench/idle_sessions.sh).

Standard library only: speaks the v3 startup and SCRAM-SHA-256 (or cleartext) auth (from
pgwire_client.py, shared with approvals_client.py), runs one `SELECT 1` per session so it is
fully set up end to end, then leaves every session idle until killed. Prints
`READY <n> <seconds>` on stdout once all n sessions are idle.

    IDLE_PASSWORD=... idle_client.py HOST PORT USER DBNAME N [CONCURRENCY]
"""
import asyncio
import os
import sys
import time

from pgwire_client import Fail, Startup, error_text, message, message_length

HOST, PORT, USER, DB = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4].encode()
N = int(sys.argv[5])
CONCURRENCY = int(sys.argv[6]) if len(sys.argv) > 6 else 32
PASSWORD = os.environ["IDLE_PASSWORD"].encode()


async def read_message(reader):
    head = await reader.readexactly(5)
    return head[:1], await reader.readexactly(message_length(head))


async def open_session():
    reader, writer = await asyncio.open_connection(HOST, PORT)
    startup = Startup(USER, DB, PASSWORD, b"idle-bench")
    writer.write(startup.first())
    while not startup.done:
        kind, body = await read_message(reader)
        writer.write(startup.feed(kind, body))
    writer.write(message(b"Q", b"SELECT 1\0"))
    while True:
        kind, body = await read_message(reader)
        if kind == b"E":
            raise Fail(error_text(body))
        if kind == b"Z":
            return reader, writer


async def main():
    gate = asyncio.Semaphore(CONCURRENCY)
    sessions = []

    async def one(i):
        async with gate:
            try:
                sessions.append(await open_session())
            except Exception as e:  # noqa: BLE001 - report which session and why, then stop
                print(f"FAIL session {i}: {type(e).__name__}: {e}", flush=True)
                os._exit(1)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(N)))
    print(f"READY {len(sessions)} {time.monotonic() - start:.1f}", flush=True)
    await asyncio.Event().wait()  # idle until killed


if __name__ == "__main__":
    asyncio.run(main())
