//! The Postgres frame decoder (`src/pg/relay/framer.rs`), as the client side and as the
//! server side use it: whatever the bytes and however they arrive (split into chunks at
//! fuzzer-chosen points), it never panics, never hands out a byte twice or out of order,
//! never loses one, cuts whole frames exactly at their length, never asks to buffer more
//! than one frame of `max_message`, and cuts the same way however the input is chunked.
//!
//! The relay's own sides (`FromClient`, `FromServer`) need a live session, so the sides
//! here follow their rules instead: the client refuses oversized frames, broken lengths and
//! unknown tags; the server streams oversized frames and takes the rest of a broken stream.
//! Which tags are read whole, streamed or unknown is drawn from the input, so every mix is
//! tried. The framer source is compiled in as it is (`#[path]`), with a stand-in `Fatal`.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod relay {
    /// Stand-in for the relay's fatal error: the framer only passes it through.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Fatal(pub &'static str);

    #[path = "../../../src/pg/relay/framer.rs"]
    pub mod framer;

    use bytes::BytesMut;
    use framer::{Cut, Framer, Side};

    /// What a side saw, as one ordered log of bytes handed out.
    #[derive(Debug, PartialEq, Eq, Default)]
    pub struct Seen {
        pub out: Vec<u8>,
        pub frames: Vec<(u8, usize)>,
        pub streams: Vec<u8>,
        pub end: Option<Result<(), Fatal>>,
    }

    pub struct Recorder<'a> {
        pub client: bool,
        pub cuts: &'a [u8; 256],
        pub seen: Seen,
        pub max_message: usize,
        /// The server side's stream broke: nothing more is framed.
        pub broken: bool,
    }

    impl Side for Recorder<'_> {
        fn cut(&self, tag: u8) -> Cut {
            match self.cuts[tag as usize] % 3 {
                0 => Cut::Whole,
                1 => Cut::Stream,
                _ if self.client => Cut::Unknown,
                _ => Cut::Stream,
            }
        }
        fn oversized(&mut self, len: usize, max_message: usize) -> Result<(), Fatal> {
            assert!(len > max_message, "oversized below the limit");
            if self.client { Err(Fatal("54000")) } else { Ok(()) }
        }
        fn unknown(&mut self, _tag: u8) -> Fatal {
            assert!(self.client, "the server side has no unknown tags");
            Fatal("08P01")
        }
        fn bad_length(&mut self, rest: &mut BytesMut) -> Result<(), Fatal> {
            if self.client {
                return Err(Fatal("08P01 length"));
            }
            self.seen.out.extend_from_slice(rest);
            rest.clear();
            self.broken = true;
            Ok(())
        }
        fn stop(&self) -> bool {
            self.broken
        }
        fn stream_starts(&mut self, tag: u8) {
            self.seen.streams.push(tag);
        }
        fn stream(&mut self, bytes: &[u8]) {
            self.seen.out.extend_from_slice(bytes);
        }
        fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
            assert!(frame.len() >= 5 && frame[0] == tag, "a frame starts with its header");
            let len = i32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]);
            assert_eq!(len as usize + 1, frame.len(), "a whole frame is cut at its length");
            assert!(frame.len() - 5 <= self.max_message, "a whole frame over the limit");
            self.seen.frames.push((tag, frame.len()));
            self.seen.out.extend_from_slice(&frame);
            Ok(())
        }
    }

    /// Feeds `bytes` in the given chunks; returns what the side saw and the bytes still
    /// buffered.
    pub fn run(client: bool, cuts: &[u8; 256], max_message: usize, chunks: &[&[u8]]) -> (Seen, Vec<u8>) {
        let mut framer = Framer::new(max_message);
        let mut side = Recorder { client, cuts, seen: Seen::default(), max_message, broken: false };
        for chunk in chunks {
            framer.buf.extend_from_slice(chunk);
            if side.broken {
                // As the relay does once the server's stream broke: pass the bytes on.
                side.seen.out.extend_from_slice(&framer.buf);
                framer.buf.clear();
                continue;
            }
            let r = framer.cut(&mut side);
            assert!(
                framer.want == 0 || framer.want <= max_message + 5,
                "asks to buffer {} bytes with max_message {max_message}",
                framer.want
            );
            if r.is_err() {
                side.seen.end = Some(r);
                break;
            }
        }
        let rest = framer.buf.to_vec();
        (side.seen, rest)
    }
}

fuzz_target!(|data: &[u8]| {
    // Header: side, max_message (0..=1023), the tag table seed, the chunk split points.
    if data.len() < 6 {
        return;
    }
    let client = data[0] & 1 == 1;
    let max_message = usize::from(u16::from_be_bytes([data[1], data[2]]) & 0x3ff);
    let mut cuts = [0u8; 256];
    for (i, c) in cuts.iter_mut().enumerate() {
        *c = data[3].wrapping_mul(i as u8).wrapping_add(data[4]) ^ (i as u8 >> 3);
    }
    let splits = usize::from(data[5] % 8);
    let body = &data[6..];
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

    let (seen, rest) = relay::run(client, &cuts, max_message, &chunks);
    // Conservation and order: what was handed out, then what is still buffered, is a
    // prefix of the input (all of it unless a refusal stopped the cutting).
    let mut handed = seen.out.clone();
    handed.extend_from_slice(&rest);
    assert!(body.starts_with(&handed), "bytes lost, duplicated or reordered");
    if seen.end.is_none() {
        assert_eq!(handed.len(), body.len(), "bytes lost without a refusal");
    }
    // However the input was chunked, the same cut (a refusal may come at the same frame).
    let (whole, whole_rest) = relay::run(client, &cuts, max_message, &[body]);
    if seen.end.is_none() && whole.end.is_none() {
        assert_eq!(seen.frames, whole.frames, "chunking changed the frames");
        assert_eq!(seen.out, whole.out, "chunking changed the bytes handed out");
        assert_eq!(rest, whole_rest);
    }
    assert_eq!(seen.end, whole.end, "chunking changed the outcome");
});
