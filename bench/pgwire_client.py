"""The PostgreSQL v3 wire pieces the bench clients share (Python standard library only).

Used by idle_client.py (asyncio) and approvals_client.py (blocking sockets), so it does no
I/O itself: `Startup` is the start-up and authentication exchange (SCRAM-SHA-256 or
cleartext) as a state machine the caller feeds with the server's messages.
"""
import base64
import hashlib
import hmac
import os
import struct

PROTOCOL_V3 = 196608

# (password, salt, iterations) -> SaltedPassword: a verifier has one salt, so PBKDF2 runs once
# per password however many sessions authenticate.
_salted = {}


class Fail(Exception):
    """The server refused or said something the client did not expect."""


def message(kind: bytes, body: bytes) -> bytes:
    """A typed frontend message: kind, then the length (itself included), then the body."""
    return kind + struct.pack("!i", len(body) + 4) + body


def message_length(head: bytes) -> int:
    """The body length of a backend message from its 5-byte header (kind + length)."""
    (length,) = struct.unpack_from("!i", head, 1)
    return length - 4


def fields_of(body: bytes) -> dict:
    """The fields of an ErrorResponse or NoticeResponse, by their one-byte codes."""
    return {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}


def error_text(body: bytes) -> str:
    f = fields_of(body)
    return f"{f.get(b'S', 'ERROR')} {f.get(b'C', '?')}: {f.get(b'M', '')}"


def salted_password(password: bytes, salt_b64: bytes, iterations: int) -> bytes:
    key = (password, salt_b64, iterations)
    if key not in _salted:
        _salted[key] = hashlib.pbkdf2_hmac("sha256", password, base64.b64decode(salt_b64), iterations)
    return _salted[key]


class Startup:
    """The start-up exchange of one session, without I/O.

    Send `first()`, then hand every message the server sends to `feed(kind, body)` and send
    what it returns (b"" means nothing) until `done`; it raises Fail on an ErrorResponse, a
    wrong SCRAM server signature or an authentication method it does not speak.
    """

    def __init__(self, user: bytes, db: bytes, password: bytes, app: bytes):
        self.user, self.db, self.password, self.app = user, db, password, app
        self.first_bare = b"n=,r=" + base64.b64encode(os.urandom(18))
        self.expected_signature = None
        self.done = False

    def first(self) -> bytes:
        params = b"".join(k + b"\0" + v + b"\0" for k, v in
                          ((b"user", self.user), (b"database", self.db),
                           (b"application_name", self.app))) + b"\0"
        return struct.pack("!ii", len(params) + 8, PROTOCOL_V3) + params

    def feed(self, kind: bytes, body: bytes) -> bytes:
        if kind == b"R":
            return self._auth(body)
        if kind == b"E":
            raise Fail(error_text(body))
        if kind == b"Z":
            self.done = True
        return b""  # ParameterStatus, BackendKeyData, notices

    def _auth(self, body: bytes) -> bytes:
        (code,) = struct.unpack("!i", body[:4])
        if code == 0:  # AuthenticationOk
            return b""
        if code == 10:  # AuthenticationSASL
            if b"SCRAM-SHA-256\0" not in body[4:]:
                raise Fail(f"server offers no SCRAM-SHA-256: {body[4:]!r}")
            first = b"n,," + self.first_bare
            return message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        if code == 11:  # AuthenticationSASLContinue
            server_first = body[4:]
            attrs = dict(kv.split(b"=", 1) for kv in server_first.split(b","))
            salted = salted_password(self.password, attrs[b"s"], int(attrs[b"i"]))
            client_key = hmac.new(salted, b"Client Key", "sha256").digest()
            stored_key = hashlib.sha256(client_key).digest()
            without_proof = b"c=biws,r=" + attrs[b"r"]
            auth_message = self.first_bare + b"," + server_first + b"," + without_proof
            signature = hmac.new(stored_key, auth_message, "sha256").digest()
            proof = bytes(a ^ b for a, b in zip(client_key, signature))
            server_key = hmac.new(salted, b"Server Key", "sha256").digest()
            self.expected_signature = b"v=" + base64.b64encode(
                hmac.new(server_key, auth_message, "sha256").digest())
            return message(b"p", without_proof + b",p=" + base64.b64encode(proof))
        if code == 12:  # AuthenticationSASLFinal
            if body[4:] != self.expected_signature:
                raise Fail("SCRAM: wrong server signature")
            return b""
        if code == 3:  # cleartext
            return message(b"p", self.password + b"\0")
        raise Fail(f"unsupported authentication request {code}")
