//! Terminal recordings of shell and exec channels, as audit `Recording` events.
//!
//! Invariants:
//! - Bounded cost: small chunks are coalesced per channel (one event per
//!   [`COALESCE_BYTES`] or [`COALESCE_TIME`], and whenever the stream switches between
//!   input, output and resize, so order is kept); a session records at most
//!   [`SESSION_CAP`] bytes, after which one `o` event notes the truncation and nothing more
//!   is recorded.
//! - Events are UTF-8: a multi-byte character split between two chunks is kept whole.
//! - `t` is seconds since the session started, taken when the first byte of an event
//!   arrived.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::trail;
use crate::app::AppState;
use crate::audit::{Backlog, Text};
use crate::gate::SessionCtx;

pub const COALESCE_BYTES: usize = 16 * 1024;
pub const COALESCE_TIME: Duration = Duration::from_millis(20);
pub const SESSION_CAP: usize = 8 * 1024 * 1024;
const TRUNCATED: &str = "\r\n[jitgate: recording truncated]\r\n";

/// The session's recording budget.
pub(crate) struct Recorder {
    app: Arc<AppState>,
    session: Arc<str>,
    backlog: Backlog,
    start: Instant,
    budget: AtomicUsize,
    truncated: AtomicBool,
}

impl Recorder {
    pub fn new(app: Arc<AppState>, session: &SessionCtx, start: Instant) -> Recorder {
        Recorder {
            app,
            session: Arc::from(session.id.as_str()),
            backlog: session.backlog.clone(),
            start,
            budget: AtomicUsize::new(SESSION_CAP),
            truncated: AtomicBool::new(false),
        }
    }

    /// Take up to `want` bytes of the budget.
    fn take(&self, want: usize) -> usize {
        let mut got = 0;
        let _ = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                got = want.min(left);
                Some(left - got)
            });
        got
    }

    fn emit(&self, channel: u32, t: f64, stream: char, data: Text) {
        trail::recording(
            &self.app,
            &self.backlog,
            &self.session,
            channel,
            t,
            stream,
            data,
        );
    }

    pub fn channel(self: &Arc<Self>, channel: u32) -> ChannelRecorder {
        ChannelRecorder {
            rec: self.clone(),
            channel,
            buf: Mutex::new(Buffered {
                stream: 'o',
                t: 0.0,
                since: Instant::now(),
                data: BytesMut::new(),
            }),
        }
    }
}

struct Buffered {
    stream: char,
    t: f64,
    since: Instant,
    data: BytesMut,
}

/// One channel's recording; `push` may be called from both relay directions.
pub(crate) struct ChannelRecorder {
    rec: Arc<Recorder>,
    channel: u32,
    buf: Mutex<Buffered>,
}

/// Bytes of `b` that form whole UTF-8 characters, leaving an incomplete tail (≤ 3 bytes).
fn utf8_whole(b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Ok(_) => b.len(),
        Err(e) if e.error_len().is_none() && b.len() - e.valid_up_to() < 4 => e.valid_up_to(),
        Err(_) => b.len(),
    }
}

impl ChannelRecorder {
    pub fn output(&self, data: &[u8]) {
        self.push('o', data);
    }

    pub fn input(&self, data: &[u8]) {
        self.push('i', data);
    }

    pub fn resize(&self, cols: u32, rows: u32) {
        let mut b = self.lock();
        self.flush(&mut b, true);
        let t = self.rec.start.elapsed().as_secs_f64();
        self.rec
            .emit(self.channel, t, 'r', Text::from(format!("{cols}x{rows}")));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, stream: char, data: &[u8]) {
        if data.is_empty() || self.rec.truncated.load(Ordering::Relaxed) {
            return;
        }
        let mut b = self.lock();
        if !b.data.is_empty()
            && (b.stream != stream
                || b.data.len() >= COALESCE_BYTES
                || b.since.elapsed() >= COALESCE_TIME)
        {
            let all = b.stream != stream;
            self.flush(&mut b, all);
        }
        let got = self.rec.take(data.len());
        if b.data.is_empty() {
            b.stream = stream;
            b.since = Instant::now();
            b.t = self.rec.start.elapsed().as_secs_f64();
        }
        b.data.extend_from_slice(&data[..got]);
        if got < data.len() {
            self.flush(&mut b, true);
            if !self.rec.truncated.swap(true, Ordering::Relaxed) {
                let t = self.rec.start.elapsed().as_secs_f64();
                self.rec
                    .emit(self.channel, t, 'o', Text::from_static(TRUNCATED));
            }
        }
    }

    /// Emit what is buffered (all of it when `all`, else whole characters only).
    fn flush(&self, b: &mut Buffered, all: bool) {
        let n = if all {
            b.data.len()
        } else {
            utf8_whole(&b.data)
        };
        if n == 0 {
            return;
        }
        let chunk: Bytes = b.data.split_to(n).freeze();
        self.rec
            .emit(self.channel, b.t, b.stream, Text::from(chunk));
        if !b.data.is_empty() {
            b.t = self.rec.start.elapsed().as_secs_f64();
            b.since = Instant::now();
        }
    }

    /// Emit the rest (channel end).
    pub fn close(&self) {
        let mut b = self.lock();
        self.flush(&mut b, true);
    }
}

#[cfg(test)]
mod tests {
    use super::utf8_whole;

    #[test]
    fn keeps_split_characters_whole() {
        assert_eq!(utf8_whole(b"abc"), 3);
        let e = "é".as_bytes();
        assert_eq!(utf8_whole(&[b'a', e[0]]), 1);
        assert_eq!(
            utf8_whole(&[0xff, b'a']),
            2,
            "invalid bytes are not held back"
        );
    }
}
