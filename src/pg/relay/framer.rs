//! Cutting one direction's byte stream into frames, the same way for both directions.
//!
//! A frame is a tag byte and a 4-byte big-endian length that counts itself but not the tag.
//! A [`Side`] says which tags the relay must read whole (bounded by `max_message_bytes`) and
//! which stream through in pieces whatever their size (DataRow, CopyData…), what an
//! oversized or unknown tag means, and what a broken length means. The framer keeps the
//! bytes read and not yet handled (`buf`), how many bytes of a streamed frame are still to
//! pass through (`pass_through`), and the size of the whole frame it is waiting for
//! (`want`, so the reader can make room for it).
//!
//! Invariant: bytes leave `buf` in order, each either inside a whole frame handed to
//! [`Side::frame`] or as part of a streamed frame handed to [`Side::stream`]; nothing is
//! dropped or reordered here.

use bytes::{Buf, BytesMut};

use super::Fatal;
use crate::lifecycle::{MessageBudget, Reserved};
use crate::pg::msg::Fields;

/// A whole-read frame up to this size is buffered without touching the shared budget: a
/// session's reads are bounded by its read chunk anyway.
pub(super) const FREE_FRAME_BYTES: usize = 64 * 1024;

/// How a frame with a given tag is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    /// Read whole (up to `max_message` bytes) and handed to [`Side::frame`].
    Whole,
    /// Passed through in pieces as the bytes arrive.
    Stream,
    /// Not allowed on this side: [`Side::unknown`].
    Unknown,
}

/// What one direction does with its frames.
pub(super) trait Side {
    /// How frames with this tag are cut.
    fn cut(&self, tag: u8) -> Cut;
    /// A frame of a [`Cut::Whole`] tag whose body is over `max_message` bytes (`len` is its
    /// length field): `Err` refuses it, `Ok` streams it through instead.
    fn oversized(&mut self, len: usize, max_message: usize) -> Result<(), Fatal>;
    /// A frame of a [`Cut::Whole`] tag (`len` is its length field) that the shared memory
    /// budget cannot hold now: refused, as PostgreSQL refuses what it cannot allocate.
    fn over_budget(&mut self, len: usize) -> Fatal {
        Fatal(Fields::new(
            "FATAL",
            "53200",
            format!(
                "out of memory: jitgate cannot buffer a message of {len} bytes now; try again later"
            ),
        ))
    }
    /// A tag of [`Cut::Unknown`].
    fn unknown(&mut self, tag: u8) -> Fatal;
    /// A length field below 4: the stream cannot be framed any further. `rest` is
    /// everything not yet handled (the side may take it); `Ok` ends this pass, `Err`
    /// refuses the stream.
    fn bad_length(&mut self, rest: &mut BytesMut) -> Result<(), Fatal>;
    /// Stop cutting for now (checked before each step).
    fn stop(&self) -> bool {
        false
    }
    /// Between two frames, before the next one is looked at.
    fn boundary(&mut self) {}
    /// A streamed frame with this tag starts; its bytes follow through [`Side::stream`].
    fn stream_starts(&mut self, _tag: u8) {}
    /// Bytes of a streamed frame, in order.
    fn stream(&mut self, bytes: &[u8]);
    /// A whole frame, header included.
    fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal>;
}

/// One direction's read buffer and the position of its frames.
#[derive(Default)]
pub(super) struct Framer {
    /// Bytes read from this side and not yet handled.
    pub buf: BytesMut,
    /// Bytes of the current streamed frame still to pass through.
    pub pass_through: usize,
    /// The size of the incomplete whole frame at the start of `buf`, or 0: reads may grow
    /// the buffer to it.
    pub want: usize,
    /// The largest body of a whole-read frame.
    pub max_message: usize,
    /// Where a larger incomplete whole frame takes its memory from (`None`: unbounded, for
    /// the server's side, which is trusted).
    pub budget: Option<MessageBudget>,
    /// What the incomplete whole frame at the start of `buf` holds of the budget.
    reserved: Option<Reserved>,
}

impl Framer {
    pub fn new(max_message: usize) -> Framer {
        Framer {
            max_message,
            ..Framer::default()
        }
    }

    /// A framer whose incomplete large frames take their memory from `budget`.
    pub fn with_budget(max_message: usize, budget: MessageBudget) -> Framer {
        Framer {
            max_message,
            budget: Some(budget),
            ..Framer::default()
        }
    }

    /// Between two frames (nothing of a streamed frame is still to come).
    pub fn at_boundary(&self) -> bool {
        self.pass_through == 0
    }

    /// Cut and hand on everything `buf` holds, until `side` says stop or more bytes are
    /// needed.
    pub fn cut(&mut self, side: &mut impl Side) -> Result<(), Fatal> {
        self.want = 0;
        while !side.stop() {
            if self.pass_through > 0 {
                if self.buf.is_empty() {
                    break;
                }
                let n = self.pass_through.min(self.buf.len());
                side.stream(&self.buf[..n]);
                self.buf.advance(n);
                self.pass_through -= n;
                continue;
            }
            side.boundary();
            if self.buf.len() < 5 {
                break;
            }
            let tag = self.buf[0];
            let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            if len < 4 {
                return side.bad_length(&mut self.buf);
            }
            let total = len as usize + 1;
            match side.cut(tag) {
                Cut::Stream => {
                    side.stream_starts(tag);
                    self.pass_through = total;
                    continue;
                }
                Cut::Unknown => return Err(side.unknown(tag)),
                Cut::Whole => {}
            }
            if total - 5 > self.max_message {
                side.oversized(total - 1, self.max_message)?;
                self.pass_through = total;
                continue;
            }
            if self.buf.len() < total {
                if let Some(budget) = &self.budget
                    && total > FREE_FRAME_BYTES
                    && self.reserved.as_ref().is_none_or(|r| r.bytes != total)
                {
                    self.reserved = None;
                    match budget.reserve(total) {
                        Some(r) => self.reserved = Some(r),
                        None => return Err(side.over_budget(total - 1)),
                    }
                }
                self.want = total;
                self.buf.reserve(total - self.buf.len());
                break;
            }
            self.reserved = None;
            let frame = self.buf.split_to(total);
            side.frame(tag, frame)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::{Cut, Framer, Side};
    use crate::pg::msg::Fields;
    use crate::pg::relay::Fatal;

    /// A side that records what the framer hands it. Like the client: `Q` whole, `d` and
    /// `c` streamed, others unknown; `refuse` says whether oversized frames and broken
    /// lengths are refused (the client) or passed on (the server).
    #[derive(Default)]
    struct Recorder {
        refuse: bool,
        stop_after_frames: Option<usize>,
        frames: Vec<(u8, Vec<u8>)>,
        streamed: Vec<u8>,
        stream_starts: Vec<u8>,
        boundaries: usize,
        broken: Vec<u8>,
    }

    fn fatal(code: &'static str) -> Fatal {
        Fatal(Fields::new("FATAL", code, "test"))
    }

    impl Side for Recorder {
        fn cut(&self, tag: u8) -> Cut {
            match tag {
                b'Q' => Cut::Whole,
                b'd' | b'c' => Cut::Stream,
                _ if self.refuse => Cut::Unknown,
                _ => Cut::Stream,
            }
        }

        fn oversized(&mut self, _len: usize, _max: usize) -> Result<(), Fatal> {
            if self.refuse {
                Err(fatal("54000"))
            } else {
                Ok(())
            }
        }

        fn unknown(&mut self, _tag: u8) -> Fatal {
            fatal("08P01")
        }

        fn bad_length(&mut self, rest: &mut BytesMut) -> Result<(), Fatal> {
            if self.refuse {
                return Err(fatal("08P01"));
            }
            self.broken.extend_from_slice(rest);
            rest.clear();
            Ok(())
        }

        fn stop(&self) -> bool {
            self.stop_after_frames
                .is_some_and(|n| self.frames.len() >= n)
        }

        fn boundary(&mut self) {
            self.boundaries += 1;
        }

        fn stream_starts(&mut self, tag: u8) {
            self.stream_starts.push(tag);
        }

        fn stream(&mut self, bytes: &[u8]) {
            self.streamed.extend_from_slice(bytes);
        }

        fn frame(&mut self, tag: u8, frame: BytesMut) -> Result<(), Fatal> {
            self.frames.push((tag, frame.to_vec()));
            Ok(())
        }
    }

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_i32(body.len() as i32 + 4);
        b.put_slice(body);
        b.to_vec()
    }

    fn code(r: Result<(), Fatal>) -> Option<&'static str> {
        r.err().map(|Fatal(f)| f.code)
    }

    #[test]
    fn whole_frames_wait_for_all_their_bytes() {
        let q = frame(b'Q', b"SELECT 1\0");
        let mut f = Framer::new(1024);
        let mut side = Recorder::default();
        f.buf.extend_from_slice(&q[..7]);
        assert!(f.cut(&mut side).is_ok());
        assert!(side.frames.is_empty());
        assert_eq!(f.want, q.len(), "room for the whole frame");
        f.buf.extend_from_slice(&q[7..]);
        assert!(f.cut(&mut side).is_ok());
        assert_eq!(side.frames, vec![(b'Q', q.clone())]);
        assert_eq!(f.want, 0);
        assert!(f.buf.is_empty() && f.at_boundary());
    }

    #[test]
    fn streamed_frames_pass_in_pieces_whatever_their_size() {
        let d = frame(b'd', &[7u8; 3000]);
        let q = frame(b'Q', b"x\0");
        let mut f = Framer::new(100);
        let mut side = Recorder::default();
        f.buf.extend_from_slice(&d[..1000]);
        assert!(f.cut(&mut side).is_ok());
        assert_eq!(side.stream_starts, vec![b'd']);
        assert_eq!(side.streamed, d[..1000]);
        assert!(!f.at_boundary());
        assert_eq!(f.pass_through, d.len() - 1000);
        f.buf.extend_from_slice(&d[1000..]);
        f.buf.extend_from_slice(&q);
        assert!(f.cut(&mut side).is_ok());
        assert_eq!(side.streamed, d);
        assert_eq!(side.frames, vec![(b'Q', q)]);
        assert!(f.at_boundary());
        assert_eq!(side.stream_starts, vec![b'd'], "one start per frame");
    }

    #[test]
    fn oversized_whole_frames_are_refused_or_streamed() {
        let big = frame(b'Q', &[b'a'; 200]);
        let mut f = Framer::new(100);
        f.buf.extend_from_slice(&big);
        let mut client = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        assert_eq!(code(f.cut(&mut client)), Some("54000"));
        assert!(client.frames.is_empty() && client.streamed.is_empty());

        let mut f = Framer::new(100);
        f.buf.extend_from_slice(&big);
        let mut server = Recorder::default();
        assert!(f.cut(&mut server).is_ok());
        assert!(server.frames.is_empty());
        assert_eq!(server.streamed, big);
        // Exactly max_message bytes of body is still read whole.
        let mut f = Framer::new(200);
        f.buf.extend_from_slice(&big);
        assert!(f.cut(&mut server).is_ok());
        assert_eq!(server.frames.len(), 1);
    }

    #[test]
    fn unknown_tags_and_broken_lengths() {
        let mut f = Framer::new(100);
        f.buf.extend_from_slice(&frame(b'Z', b"I"));
        let mut client = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        assert_eq!(code(f.cut(&mut client)), Some("08P01"));

        let broken = [b'Q', 0, 0, 0, 3, 1, 2, 3];
        let mut f = Framer::new(100);
        f.buf.extend_from_slice(&broken);
        assert_eq!(code(f.cut(&mut client)), Some("08P01"));

        let mut f = Framer::new(100);
        let ok = frame(b'Q', b"\0");
        f.buf.extend_from_slice(&ok);
        f.buf.extend_from_slice(&broken);
        let mut server = Recorder::default();
        assert!(f.cut(&mut server).is_ok());
        assert_eq!(server.frames, vec![(b'Q', ok)]);
        assert_eq!(server.broken, broken, "passed on as they are");
        assert!(f.buf.is_empty());
    }

    #[test]
    fn stop_and_boundaries() {
        let mut f = Framer::new(100);
        let a = frame(b'Q', b"a\0");
        let d = frame(b'd', b"row");
        f.buf.extend_from_slice(&a);
        f.buf.extend_from_slice(&d);
        f.buf.extend_from_slice(&a);
        let mut side = Recorder {
            stop_after_frames: Some(1),
            ..Recorder::default()
        };
        assert!(f.cut(&mut side).is_ok());
        assert_eq!(side.frames.len(), 1, "nothing after a stop");
        assert_eq!(f.buf.len(), d.len() + a.len());
        side.stop_after_frames = None;
        side.boundaries = 0;
        assert!(f.cut(&mut side).is_ok());
        assert_eq!(side.frames.len(), 2);
        // Before the streamed frame, before the second Q, and at the end.
        assert_eq!(side.boundaries, 3);
    }
}
