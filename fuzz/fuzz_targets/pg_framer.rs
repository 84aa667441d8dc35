//! The Postgres frame decoder (`src/pg/relay/framer.rs`), as the client side and as the
//! server side use it: whatever the bytes and however they arrive (split into chunks at
//! fuzzer-chosen points), it never panics, never hands out a byte twice or out of order,
//! never loses one, cuts whole frames exactly at their length, never asks to buffer more
//! than one frame of `max_message`, and cuts the same way however the input is chunked.
//!
//! The relay's own sides (`FromClient`, `FromServer`) need a live session, so the sides
//! here follow their rules instead: the client refuses oversized frames, broken lengths and
//! unknown tags and takes large incomplete frames from a shared memory budget; the server
//! streams oversized frames and takes the rest of a broken stream. Which tags are read
//! whole, streamed or unknown is drawn from the input, so every mix is tried, and so are
//! the client's pauses (a held statement stops the cutting until more bytes arrive).
//!
//! The budget's rules: it holds exactly the incomplete whole frame the framer waits for
//! when that frame is over `FREE_FRAME_BYTES` (nothing otherwise), it is given back when the
//! framer is dropped, and only a frame larger than the whole budget is refused with 53200
//! (one framer alone never competes with itself). A refusal for the budget depends on how
//! the bytes arrived (a frame that arrives whole never reserves), so it is the one outcome
//! chunking may change, and only to stop earlier.
//!
//! The framer source is compiled in as it is (`#[path]`); the crate paths it imports
//! (`crate::lifecycle`, `crate::pg::msg`, `super::Fatal`) are mirrored below and point at
//! jitgate's own types.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod lifecycle {
    pub use jitgate::lifecycle::{MessageBudget, Reserved};
}

mod pg {
    pub mod msg {
        pub use jitgate::pg::msg::Fields;
    }
}

/// The relay's fatal error, as in `src/pg/relay/mod.rs` (the framer's `super::Fatal`).
pub struct Fatal(pub pg::msg::Fields);

// At the crate root so that the path resolves from this directory, which exists.
#[allow(dead_code)] // `at_boundary` is the relay's, not used here.
#[path = "../../src/pg/relay/framer.rs"]
mod framer;

/// The client-like and server-like sides, and the runs.
mod sides {
    use crate::Fatal;
    use crate::framer::{Cut, FREE_FRAME_BYTES, Framer, Side};
    use crate::lifecycle::MessageBudget;
    use crate::pg::msg::Fields;
    use bytes::BytesMut;

    /// The SQLSTATE of a refusal for the memory budget.
    pub const OVER_BUDGET: &str = "53200";

    /// The sides' rules, drawn from the input.
    pub struct Rules<'a> {
        pub client: bool,
        pub cuts: &'a [u8; 256],
        pub max_message: usize,
        /// The client's shared budget (the server's side has none, as in the relay).
        pub budget_limit: Option<usize>,
        /// The client pauses after every this many whole frames (0: never).
        pub pause_every: usize,
    }

    /// What a side saw, as one ordered log of bytes handed out.
    #[derive(Debug, PartialEq, Eq, Default)]
    pub struct Seen {
        pub out: Vec<u8>,
        pub frames: Vec<(u8, usize)>,
        pub streams: Vec<u8>,
        /// How cutting ended: `None` if it did not, else the refusal's SQLSTATE.
        pub end: Option<&'static str>,
    }

    struct Recorder<'a> {
        rules: &'a Rules<'a>,
        seen: Seen,
        /// The server side's stream broke: nothing more is framed.
        broken: bool,
        /// The client stopped at a frame, as at a held statement.
        paused: bool,
    }

    fn fatal(code: &'static str) -> Fatal {
        Fatal(Fields::new("FATAL", code, "fuzz"))
    }

    impl Side for Recorder<'_> {
        fn cut(&self, tag: u8) -> Cut {
            match self.rules.cuts[tag as usize] % 3 {
                0 => Cut::Whole,
                1 => Cut::Stream,
                _ if self.rules.client => Cut::Unknown,
                _ => Cut::Stream,
            }
        }
        fn oversized(&mut self, len: usize, max_message: usize) -> Result<(), Fatal> {
            assert!(len > max_message + 4, "oversized within the limit");
            if self.rules.client {
                Err(fatal("54000"))
            } else {
                Ok(())
            }
        }
        fn over_budget(&mut self, len: usize) -> Fatal {
            let limit = self.rules.budget_limit;
            assert!(
                limit.is_some_and(|l| len + 1 > l),
                "53200 for a frame of {len} bytes within a budget of {limit:?}"
            );
            assert!(len + 1 > FREE_FRAME_BYTES, "53200 for a small frame");
            fatal(OVER_BUDGET)
        }
        fn unknown(&mut self, _tag: u8) -> Fatal {
            assert!(self.rules.client, "the server side has no unknown tags");
            fatal("08P01")
        }
        fn bad_length(&mut self, rest: &mut BytesMut) -> Result<(), Fatal> {
            if self.rules.client {
                return Err(fatal("08P01"));
            }
            self.seen.out.extend_from_slice(rest);
            rest.clear();
            self.broken = true;
            Ok(())
        }
        fn stop(&self) -> bool {
            self.broken || self.paused
        }
        fn stream_starts(&mut self, tag: u8) {
            self.seen.streams.push(tag);
        }
        fn stream(&mut self, bytes: &[u8]) {
            self.seen.out.extend_from_slice(bytes);
        }
        fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
            assert!(
                frame.len() >= 5 && frame[0] == tag,
                "a frame starts with its header"
            );
            let len = i32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
            assert_eq!(
                len as usize + 1,
                frame.len(),
                "a whole frame is cut at its length"
            );
            assert!(
                frame.len() - 5 <= self.rules.max_message,
                "a whole frame over the limit"
            );
            self.seen.frames.push((tag, frame.len()));
            self.seen.out.extend_from_slice(&frame);
            let every = self.rules.pause_every;
            self.paused = every > 0 && self.seen.frames.len() % every == 0;
            Ok(())
        }
    }

    /// One cut, and the framer's bounds after it.
    fn cut(
        framer: &mut Framer,
        side: &mut Recorder,
        budget: Option<&MessageBudget>,
    ) -> Result<(), Fatal> {
        let r = framer.cut(side);
        let max_message = side.rules.max_message;
        assert!(
            framer.want == 0 || framer.want <= max_message + 5,
            "asks to buffer {} bytes with max_message {max_message}",
            framer.want
        );
        if r.is_ok()
            && let Some(budget) = budget
        {
            let holds = if framer.want > FREE_FRAME_BYTES {
                framer.want
            } else {
                0
            };
            assert_eq!(
                budget.used(),
                holds,
                "the budget holds {} bytes, want is {}",
                budget.used(),
                framer.want
            );
        }
        r
    }

    /// Feeds `bytes` in the given chunks; returns what the side saw and the bytes still
    /// buffered.
    pub fn run(rules: &Rules, chunks: &[&[u8]]) -> (Seen, Vec<u8>) {
        let budget = rules.budget_limit.map(MessageBudget::new);
        let mut framer = match &budget {
            Some(b) => Framer::with_budget(rules.max_message, b.clone()),
            None => Framer::new(rules.max_message),
        };
        let mut side = Recorder {
            rules,
            seen: Seen::default(),
            broken: false,
            paused: false,
        };
        for chunk in chunks {
            framer.buf.extend_from_slice(chunk);
            if side.broken {
                // As the relay does once the server's stream broke: pass the bytes on.
                side.seen.out.extend_from_slice(&framer.buf);
                framer.buf.clear();
                continue;
            }
            // A paused client resumes once more bytes arrive (its statement was decided).
            side.paused = false;
            if let Err(Fatal(f)) = cut(&mut framer, &mut side, budget.as_ref()) {
                side.seen.end = Some(f.code);
                break;
            }
        }
        // Every pause ends: cut until nothing is left to cut.
        while side.paused && side.seen.end.is_none() {
            side.paused = false;
            if let Err(Fatal(f)) = cut(&mut framer, &mut side, budget.as_ref()) {
                side.seen.end = Some(f.code);
            }
        }
        let rest = framer.buf.to_vec();
        drop(framer);
        if let Some(b) = &budget {
            assert_eq!(
                b.used(),
                0,
                "the budget is not given back when the framer goes"
            );
        }
        (side.seen, rest)
    }
}

use sides::{OVER_BUDGET, Rules, run};

fuzz_target!(|data: &[u8]| {
    // Header: side and budget, max_message, the tag table seed, chunk splits, pauses and
    // whether the body is expanded.
    if data.len() < 6 {
        return;
    }
    let client = data[0] & 1 == 1;
    // The client's budget: 64 KiB (the free frame size) up to about 4 MiB.
    let budget_limit = client.then(|| 64 * 1024 + usize::from(data[0] >> 1) * 32 * 1024);
    // Small limits (up to 1023 bytes) or, with the top bit, up to 2 MiB in 64-byte steps,
    // so frames over the free size reach the budget.
    let raw = u16::from_be_bytes([data[1], data[2]]);
    let max_message = if raw & 0x8000 != 0 {
        usize::from(raw & 0x7fff) * 64
    } else {
        usize::from(raw & 0x3ff)
    };
    let mut cuts = [0u8; 256];
    for (i, c) in cuts.iter_mut().enumerate() {
        *c = data[3].wrapping_mul(i as u8).wrapping_add(data[4]) ^ (i as u8 >> 3);
    }
    let splits = usize::from(data[5] % 8);
    let pause_every = if client {
        usize::from(data[5] >> 3) % 4
    } else {
        0
    };
    let rules = Rules {
        client,
        cuts: &cuts,
        max_message,
        budget_limit,
        pause_every,
    };
    let expanded;
    let body = if data[5] & 0x80 != 0 {
        expanded = expand(&data[6..]);
        &expanded[..]
    } else {
        &data[6..]
    };
    let mut points: Vec<usize> = body
        .iter()
        .take(splits)
        .map(|b| usize::from(*b) * body.len() / 256)
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut at = 0;
    for p in points {
        chunks.push(&body[at..p.max(at)]);
        at = p.max(at);
    }
    chunks.push(&body[at..]);

    let (seen, rest) = run(&rules, &chunks);
    // Conservation and order: what was handed out, then what is still buffered, is a
    // prefix of the input (all of it unless a refusal stopped the cutting).
    let mut handed = seen.out.clone();
    handed.extend_from_slice(&rest);
    assert!(
        body.starts_with(&handed),
        "bytes lost, duplicated or reordered"
    );
    if seen.end.is_none() {
        assert_eq!(handed.len(), body.len(), "bytes lost without a refusal");
    }
    // However the input was chunked, the same cut and the same outcome; only a refusal for
    // the budget may come earlier when the bytes arrive in pieces.
    let (whole, whole_rest) = run(&rules, &[body]);
    if seen.end == Some(OVER_BUDGET) || whole.end == Some(OVER_BUDGET) {
        assert_eq!(
            seen.end,
            Some(OVER_BUDGET),
            "whole, over the budget; in pieces {:?}",
            seen.end
        );
        assert!(
            whole.frames.starts_with(&seen.frames),
            "chunking changed the frames"
        );
        assert!(
            whole.out.starts_with(&seen.out),
            "chunking changed the bytes handed out"
        );
    } else {
        assert_eq!(seen.frames, whole.frames, "chunking changed the frames");
        assert_eq!(
            seen.streams, whole.streams,
            "chunking changed the streamed frames"
        );
        assert_eq!(seen.out, whole.out, "chunking changed the bytes handed out");
        assert_eq!(seen.end, whole.end, "chunking changed the outcome");
        if seen.end.is_none() {
            assert_eq!(rest, whole_rest, "chunking changed what stays buffered");
        }
    }
});

/// An expanded body grows no further past this (a few frames over the free size).
const EXPANDED_BYTES: usize = 256 * 1024;

/// Frames larger than the free size (64 KiB) must arrive whole for the budget's release to
/// be tested, and libFuzzer's inputs are a few KiB: in an expanded body, `0xFE k` stands
/// for `k` × 1 KiB of zero bytes (a frame body), while the body is under
/// [`EXPANDED_BYTES`]; past it, bytes are taken as they are.
fn expand(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut bytes = body.iter();
    while let Some(&b) = bytes.next() {
        match (b, bytes.clone().next()) {
            (0xFE, Some(&k)) if out.len() < EXPANDED_BYTES => {
                bytes.next();
                out.resize(out.len() + usize::from(k) * 1024, 0);
            }
            _ => out.push(b),
        }
    }
    out
}
