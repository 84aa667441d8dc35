#!/usr/bin/env python3
"""Open N authenticated Postgres sessions and keep them idle (used by bench/idle_sessions.sh).

Standard library only: speaks the v3 startup, SCRAM-SHA-256 (or cleartext) auth, runs one
`SELECT 1` per session so it is fully set up end to end, then leaves every session idle until
killed. Prints `READY <n> <seconds>` on stdout once all n sessions are idle.

    IDLE_PASSWORD=... idle_client.py HOST PORT USER DBNAME N [CONCURRENCY]
"""
import asyncio
import base64
import hashlib
import hmac
import os
import struct
import sys
import time

HOST, PORT, USER, DB = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4].encode()
N = int(sys.argv[5])
CONCURRENCY = int(sys.argv[6]) if len(sys.argv) > 6 else 32
PASSWORD = os.environ["IDLE_PASSWORD"].encode()
_salted = {}  # (salt, iterations) -> SaltedPassword: the proxy's verifier has one salt


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


async def read_message(reader):
    head = await reader.readexactly(5)
    (length,) = struct.unpack("!i", head[1:])
    return head[:1], await reader.readexactly(length - 4)


def error_text(body: bytes) -> str:
    fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
    return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '?')}: {fields.get(b'M', '')}"


async def open_session():
    reader, writer = await asyncio.open_connection(HOST, PORT)
    params = b"".join(k + b"\0" + v + b"\0" for k, v in
                      ((b"user", USER), (b"database", DB), (b"application_name", b"idle-bench")))
    params += b"\0"
    writer.write(struct.pack("!ii", len(params) + 8, 196608) + params)
    first_bare = b"n=,r=" + base64.b64encode(os.urandom(18))
    expected_signature = None
    while True:
        kind, body = await read_message(reader)
        if kind == b"R":
            (code,) = struct.unpack("!i", body[:4])
            if code == 0:  # AuthenticationOk
                continue
            if code == 10:  # AuthenticationSASL
                if b"SCRAM-SHA-256\0" not in body[4:]:
                    raise RuntimeError(f"server offers no SCRAM-SHA-256: {body[4:]!r}")
                first = b"n,," + first_bare
                writer.write(message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
            elif code == 11:  # AuthenticationSASLContinue
                server_first = body[4:]
                attrs = dict(kv.split(b"=", 1) for kv in server_first.split(b","))
                key = (attrs[b"s"], int(attrs[b"i"]))
                if key not in _salted:
                    _salted[key] = hashlib.pbkdf2_hmac("sha256", PASSWORD, base64.b64decode(key[0]), key[1])
                salted = _salted[key]
                client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                stored_key = hashlib.sha256(client_key).digest()
                without_proof = b"c=biws,r=" + attrs[b"r"]
                auth_message = first_bare + b"," + server_first + b"," + without_proof
                signature = hmac.new(stored_key, auth_message, "sha256").digest()
                proof = bytes(a ^ b for a, b in zip(client_key, signature))
                writer.write(message(b"p", without_proof + b",p=" + base64.b64encode(proof)))
                server_key = hmac.new(salted, b"Server Key", "sha256").digest()
                expected_signature = b"v=" + base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest())
            elif code == 12:  # AuthenticationSASLFinal
                if body[4:] != expected_signature:
                    raise RuntimeError("SCRAM: wrong server signature")
            elif code == 3:  # cleartext
                writer.write(message(b"p", PASSWORD + b"\0"))
            else:
                raise RuntimeError(f"unsupported authentication request {code}")
        elif kind == b"E":
            raise RuntimeError(error_text(body))
        elif kind == b"Z":
            break
    writer.write(message(b"Q", b"SELECT 1\0"))
    while True:
        kind, body = await read_message(reader)
        if kind == b"E":
            raise RuntimeError(error_text(body))
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
