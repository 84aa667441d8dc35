#!/usr/bin/env python3
"""Writes the seed corpora of `sql_two_parsers` and `pg_framer` (run from `fuzz/`).

- corpus/sql_two_parsers/: one file per text of the SQL test corpus
  (`src/policy/sql/tests/corpus/*.sql`, read as `tests/corpus.rs` reads it) and per query
  of psql 15 (`testdata/psql15_queries.sql`), named by the SHA-1 of the text.
- corpus/pg_framer/: a few hand-made inputs in the target's layout (6 header bytes, then
  the body), among them a client frame over the 64 KiB free size that arrives in two
  chunks: without it the fuzzer does not reach the budget's release in a short run.

Existing files are kept; the corpora stay untracked (see .gitignore).
"""

import glob
import hashlib
import os
import struct

SQL_DIR = "../src/policy/sql/tests"


def corpus_texts(contents):
    """The texts of one corpus file: `-- ==== class` opens a text, `-- ####` closes it."""
    lines = contents.split("\n")
    if contents.endswith("\n"):
        lines.pop()
    texts, open_ = [], False
    for line in lines:
        if line.startswith("-- ==== "):
            texts.append([])
            open_ = True
        elif line.startswith("-- ####"):
            open_ = False
        elif open_:
            texts[-1].append(line)
    return ["\n".join(t) for t in texts]


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def sql_seeds():
    out = "corpus/sql_two_parsers"
    texts = []
    for path in sorted(glob.glob(f"{SQL_DIR}/corpus/*.sql")):
        with open(path, encoding="utf-8") as f:
            texts += corpus_texts(f.read())
    with open(f"{SQL_DIR}/testdata/psql15_queries.sql", encoding="utf-8") as f:
        texts += [q.rstrip() for q in f.read().split("\n-- ---- next query ----\n")[1:]]
    texts = [t.encode() for t in texts if t]
    for t in texts:
        write(out, hashlib.sha1(t).hexdigest(), t)
    return len(set(texts))


def frame(tag, body):
    return bytes([ord(tag)]) + struct.pack(">i", len(body) + 4) + body


def header(tag, body_len):
    return bytes([ord(tag)]) + struct.pack(">i", body_len + 4)


def framer_seeds():
    # Header: [client | budget units << 1] [max_message, 2 bytes] [tag seed a] [tag seed b]
    # [splits | pause every << 3 | expand 0x80]. With seeds (0, 3), `Q` is read whole.
    out = "corpus/pg_framer"
    q = frame("Q", b"SELECT 1\0")
    seeds = {
        "client_small": bytes([1, 0x01, 0x00, 0, 3, 0x0B]) + q + frame("d", b"x" * 300) + q,
        "server_small": bytes([0, 0x00, 0x40, 5, 1, 0x05])
        + frame("Z", b"I")
        + frame("D", b"\0\1" + b"y" * 200)
        + frame("C", b"SELECT 1\0"),
        "server_broken": bytes([0, 0x01, 0x00, 1, 2, 0x03]) + q + b"Q\0\0\0\x03abc",
        # A 100 KiB Q (max_message 256 KiB, budget 384 KiB), expanded from `FE 64`, cut in two.
        "client_large_whole": bytes([1 | 10 << 1, 0x80 | 0x10, 0x00, 0, 3, 0x81])
        + header("Q", 100 * 1024)
        + b"\xfe\x64"
        + q,
    }
    for name, data in seeds.items():
        write(out, name, data)
    return len(seeds)


if __name__ == "__main__":
    print(f"sql_two_parsers: {sql_seeds()} seeds; pg_framer: {framer_seeds()} seeds")
