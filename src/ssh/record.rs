//! Terminal recordings of SSH session channels, as audit `Recording` events: each channel
//! (exec, shell, subsystem; not file transfers, whose commands and sftp operations are
//! audited instead) records apart,
//! under its own channel id, what the client sent (`i`), what the target sent on stdout and
//! stderr (`o`), terminal sizes (`r`) and, first, its start request (`c`: the command,
//! `<interactive shell>` or `subsystem NAME`).
//!
//! Invariants:
//! - **Complete or stopped.** Bytes are recorded before they are forwarded, and a channel
//!   forwards only what [`ChannelRecorder::input`] / [`ChannelRecorder::output`] accepted.
//!   On a terminal, input that ends a line (what makes a shell act) is forwarded only once
//!   the recording up to it is on disk ([`ChannelRecorder::commit`]: one group-commit
//!   flush per Enter); other input and all output are recorded through the audit queue, so
//!   a store failure stops the session at the next chunk.
//!   Once the session's recording limit (`audit.recording_limit_bytes`, counted over every
//!   channel's input and output) would be passed, or the audit store refuses an event, the
//!   recorder is [`Stop`]ped for good: every later call fails, for every channel of the
//!   session, so nothing of the session continues unrecorded. A chunk that does not fit is
//!   neither recorded nor forwarded.
//! - Bounded cost: small chunks are coalesced per channel (one event per
//!   [`COALESCE_BYTES`] or [`COALESCE_TIME`], and whenever the stream switches between
//!   input, output and resize, so order is kept).
//! - Secrets: on a channel with a terminal, a line typed after the target printed a password
//!   prompt (`…password: `, `…passphrase…: `, `PIN: `; see [`asks_secret`]) is not recorded:
//!   the input stream holds [`HIDDEN`] in its place, up to the line's end (which is kept).
//!   It still counts against the limit. Input without a terminal is recorded as sent.
//! - Events are UTF-8 where the data is: a multi-byte character split between two chunks is
//!   kept whole.
//! - `t` is seconds since the session started, taken when the first byte of an event
//!   arrived.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::trail;
use crate::app::AppState;
use crate::audit::{Audit, Backlog, Text};
use crate::gate::SessionCtx;

pub const COALESCE_BYTES: usize = 16 * 1024;
pub const COALESCE_TIME: Duration = Duration::from_millis(20);
/// What the input stream holds instead of a line typed at a password prompt.
pub const HIDDEN: &str = "[jitgate: hidden input]";
/// The tail of a channel's output kept to recognise a password prompt.
const PROMPT_TAIL: usize = 160;

/// Why a session's recording stopped; the session ends with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The session recorded `limit` bytes and the next chunk did not fit.
    Limit(usize),
    /// The audit store refused an event.
    Store(String),
}

impl Stop {
    /// The line shown to the user on stderr (without its line end).
    pub fn user_message(&self) -> String {
        match self {
            Stop::Limit(limit) => format!(
                "jitgate: this session reached its recording limit ({limit} bytes); the session is ended"
            ),
            Stop::Store(_) => {
                "jitgate: this session can no longer be recorded (the audit store failed); the session is ended"
                    .to_string()
            }
        }
    }

    /// The session's end reason in the audit trail.
    pub fn audit_reason(&self) -> String {
        match self {
            Stop::Limit(limit) => format!("recording limit reached ({limit} bytes)"),
            Stop::Store(e) => format!("recording failed: {e}"),
        }
    }
}

/// Where a recorder's events go: the audit trail, or a test's collector.
type Sink = Box<dyn Fn(u32, f64, char, Text) -> Result<(), String> + Send + Sync>;

/// The session's recording: its limit, what it used, and whether it stopped.
pub(crate) struct Recorder {
    sink: Sink,
    /// The store and the session's backlog, for backpressure and commits.
    room: Option<(Audit, Backlog)>,
    start: Instant,
    limit: usize,
    used: AtomicUsize,
    stopped: OnceLock<Stop>,
}

impl Recorder {
    pub fn new(app: Arc<AppState>, session: &SessionCtx, start: Instant) -> Recorder {
        Recorder::on_audit(
            app.audit.clone(),
            Arc::from(session.id.as_str()),
            session.backlog.clone(),
            start,
            app.config().audit.recording_limit_bytes,
        )
    }

    fn on_audit(
        audit: Audit,
        session: Arc<str>,
        backlog: Backlog,
        start: Instant,
        limit: usize,
    ) -> Recorder {
        let (sink_audit, sink_backlog) = (audit.clone(), backlog.clone());
        let sink: Sink = Box::new(move |channel, t, stream, data| {
            trail::recording(
                &sink_audit,
                &sink_backlog,
                &session,
                channel,
                t,
                stream,
                data,
            )
            .map_err(|e| e.to_string())
        });
        Recorder::with_sink(sink, Some((audit, backlog)), start, limit)
    }

    fn with_sink(
        sink: Sink,
        room: Option<(Audit, Backlog)>,
        start: Instant,
        limit: usize,
    ) -> Recorder {
        Recorder {
            sink,
            room,
            start,
            limit,
            used: AtomicUsize::new(0),
            stopped: OnceLock::new(),
        }
    }

    /// Why the recording stopped, if it did.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stopped.get()
    }

    fn stop(&self, why: Stop) -> Stop {
        let _ = self.stopped.set(why);
        self.stopped
            .get()
            .cloned()
            .unwrap_or(Stop::Limit(self.limit))
    }

    /// Take `n` bytes of the limit, all or nothing.
    fn take(&self, n: usize) -> Result<(), Stop> {
        let limit = self.limit;
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .map(|_| ())
            .map_err(|_| self.stop(Stop::Limit(limit)))
    }

    fn emit(&self, channel: u32, t: f64, stream: char, data: Text) -> Result<(), Stop> {
        (self.sink)(channel, t, stream, data).map_err(|e| self.stop(Stop::Store(e)))
    }

    fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Start channel `channel`'s recording with its start request.
    pub fn channel(
        self: &Arc<Self>,
        channel: u32,
        command: &str,
        terminal: bool,
    ) -> Result<ChannelRecorder, Stop> {
        if let Some(s) = self.stopped() {
            return Err(s.clone());
        }
        self.emit(
            channel,
            self.elapsed(),
            'c',
            Text::from(command.to_string()),
        )?;
        Ok(ChannelRecorder {
            rec: self.clone(),
            channel,
            terminal,
            buf: Mutex::new(Buffered {
                stream: 'o',
                t: 0.0,
                since: Instant::now(),
                data: BytesMut::new(),
                prompt: BytesMut::new(),
                hiding: false,
            }),
        })
    }
}

struct Buffered {
    stream: char,
    t: f64,
    since: Instant,
    data: BytesMut,
    /// The end of the output's current line (terminal channels), to spot a password prompt.
    prompt: BytesMut,
    /// Input is being hidden until the end of the line.
    hiding: bool,
}

/// One channel's recording; `input` and `output` may be called from both relay directions.
pub(crate) struct ChannelRecorder {
    rec: Arc<Recorder>,
    channel: u32,
    terminal: bool,
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

/// Whether the last line a terminal shows asks for something not to be echoed: it ends in
/// `:` (spaces after it allowed) and names a password, passphrase, passcode or PIN.
pub fn asks_secret(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line).to_lowercase();
    let text = text.trim_end();
    if !text.ends_with(':') {
        return false;
    }
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().any(|w| {
        w.starts_with("password")
            || w.starts_with("passphrase")
            || w.starts_with("passcode")
            || *w == "pin"
    })
}

impl ChannelRecorder {
    /// Record what the target sent (stdout or stderr); `Err`: do not forward it, end the
    /// session.
    pub fn output(&self, data: &[u8]) -> Result<(), Stop> {
        let mut b = self.lock();
        self.push(&mut b, 'o', data)?;
        if self.terminal {
            let line_start = data
                .iter()
                .rposition(|&c| c == b'\n' || c == b'\r')
                .map(|i| {
                    b.prompt.clear();
                    i + 1
                })
                .unwrap_or(0);
            b.prompt.extend_from_slice(&data[line_start..]);
            if b.prompt.len() > PROMPT_TAIL {
                let cut = b.prompt.len() - PROMPT_TAIL;
                let _ = b.prompt.split_to(cut);
            }
        }
        Ok(())
    }

    /// Record what the client sent; `Err`: do not forward it, end the session.
    pub fn input(&self, data: &[u8]) -> Result<(), Stop> {
        let mut b = self.lock();
        if !self.terminal {
            return self.push(&mut b, 'i', data);
        }
        // A terminal: the part typed at a password prompt is replaced, up to the line end.
        self.rec.take(data.len())?;
        let mut rest = data;
        while !rest.is_empty() {
            if !b.hiding && asks_secret(&b.prompt) {
                b.hiding = true;
                self.append(&mut b, 'i', HIDDEN.as_bytes())?;
            }
            let end = rest.iter().position(|&c| c == b'\r' || c == b'\n');
            if !b.hiding {
                self.append(&mut b, 'i', rest)?;
                // What is typed goes on the line the prompt check reads.
                if let Some(e) = end {
                    b.prompt.clear();
                    b.prompt.extend_from_slice(&rest[e + 1..]);
                } else if b.prompt.len() < PROMPT_TAIL {
                    b.prompt
                        .extend_from_slice(&rest[..rest.len().min(PROMPT_TAIL)]);
                }
                return Ok(());
            }
            match end {
                None => return Ok(()),
                Some(e) => {
                    b.hiding = false;
                    b.prompt.clear();
                    self.append(&mut b, 'i', &rest[e..e + 1])?;
                    rest = &rest[e + 1..];
                }
            }
        }
        Ok(())
    }

    /// Record a terminal size change.
    pub fn resize(&self, cols: u32, rows: u32) -> Result<(), Stop> {
        let mut b = self.lock();
        self.flush(&mut b, true)?;
        self.rec.emit(
            self.channel,
            self.rec.elapsed(),
            'r',
            Text::from(format!("{cols}x{rows}")),
        )
    }

    /// Whether forwarding `data` must wait for [`Self::commit`]: on a terminal, a line end
    /// is what makes the target act on what was typed.
    pub fn ends_line(&self, data: &[u8]) -> bool {
        self.terminal && data.iter().any(|&c| c == b'\r' || c == b'\n')
    }

    /// Emit what is buffered and resolve once the session's recording so far is on disk.
    pub async fn commit(&self) -> Result<(), Stop> {
        {
            let mut b = self.lock();
            self.flush(&mut b, true)?;
        }
        if let Some((audit, _)) = &self.rec.room
            && let Err(e) = audit.flush().await
        {
            return Err(self.rec.stop(Stop::Store(e.to_string())));
        }
        Ok(())
    }

    /// Resolves when the audit writer has room for this session's events (backpressure: a
    /// session that produces recordings faster than they are written waits here).
    pub async fn room(&self) {
        if let Some((audit, backlog)) = &self.rec.room
            && !audit.has_room(backlog)
        {
            audit.room(backlog).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffered> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, b: &mut Buffered, stream: char, data: &[u8]) -> Result<(), Stop> {
        if let Some(s) = self.rec.stopped() {
            return Err(s.clone());
        }
        if data.is_empty() {
            return Ok(());
        }
        self.rec.take(data.len())?;
        self.append(b, stream, data)
    }

    /// Add to the buffer (the limit already taken), emitting what is due first.
    fn append(&self, b: &mut Buffered, stream: char, data: &[u8]) -> Result<(), Stop> {
        if let Some(s) = self.rec.stopped() {
            return Err(s.clone());
        }
        if !b.data.is_empty()
            && (b.stream != stream
                || b.data.len() >= COALESCE_BYTES
                || b.since.elapsed() >= COALESCE_TIME)
        {
            let all = b.stream != stream;
            self.flush(b, all)?;
        }
        if data.is_empty() {
            return Ok(());
        }
        if b.data.is_empty() {
            b.stream = stream;
            b.since = Instant::now();
            b.t = self.rec.elapsed();
        }
        b.data.extend_from_slice(data);
        Ok(())
    }

    /// Emit what is buffered (all of it when `all`, else whole characters only).
    fn flush(&self, b: &mut Buffered, all: bool) -> Result<(), Stop> {
        let n = if all {
            b.data.len()
        } else {
            utf8_whole(&b.data)
        };
        if n == 0 {
            return Ok(());
        }
        let chunk: Bytes = b.data.split_to(n).freeze();
        let t = b.t;
        if !b.data.is_empty() {
            b.t = self.rec.elapsed();
            b.since = Instant::now();
        }
        self.rec.emit(self.channel, t, b.stream, Text::from(chunk))
    }

    /// Record a line jitgate itself showed the user on this channel (the stop message).
    pub fn notice(&self, text: &str) {
        let mut b = self.lock();
        let _ = self.flush(&mut b, true);
        let _ = self.rec.emit(
            self.channel,
            self.rec.elapsed(),
            'o',
            Text::from(text.to_string()),
        );
    }

    /// Emit the rest (channel end).
    pub fn close(&self) -> Result<(), Stop> {
        let mut b = self.lock();
        self.flush(&mut b, true)
    }
}

#[cfg(test)]
mod tests;
