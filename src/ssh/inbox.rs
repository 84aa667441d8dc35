//! What a user sends on one channel, drained from russh at once into a queue whose size is
//! held down by the channel's SSH window.
//!
//! Why: russh grants window when data *arrives*, not when it is consumed, and hands data to
//! the channel over a bounded queue that, once full, stops the whole connection loop. A relay
//! that let that queue fill could deadlock on bidirectional bulk (`cat` with large input and
//! output): the loop stops before the user's window adjustments, so output to the user
//! stalls, so the target stops reading input, so the queue never drains.
//!
//! Invariants:
//! - A reader task moves every channel message into this queue as it arrives, so the
//!   connection loop does not wait on a slow target (it keeps reading window adjustments).
//! - Flow control is by window: once more than [`SOFT_CAP`] bytes wait, the handler's
//!   `adjust_window` grants only [`TRICKLE_WINDOW`] bytes and its `data` callback paces each
//!   such packet by [`TRICKLE_PACE`], so the client pauses (at most one window beyond the cap
//!   was already granted). The full window comes back once the queue is below the cap.
//! - Hard bound: past [`HARD_CAP`] bytes (a session mixing a stalled channel with a busy one
//!   can be granted more) the reader stops and russh's own backpressure stops the connection.
//! - Message order is kept; `recv` returns `None` after Close (or the connection's end).
//! - [`Inbox::closed`] resolves as soon as the reader has seen the channel's Close or the
//!   connection's end, even while earlier messages are still queued: a consumer that stopped
//!   taking messages (a held command over its input cap) still learns that the client left.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::{ChannelMsg, ChannelReadHalf};
use tokio::sync::Notify;

pub const SOFT_CAP: usize = 1 << 20;
pub const HARD_CAP: usize = 8 << 20;
pub const TRICKLE_WINDOW: u32 = 2;
pub const TRICKLE_PACE: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    msgs: VecDeque<ChannelMsg>,
    bytes: usize,
    ended: bool,
}

#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
    /// Wakes the consumer (a message arrived) and the reader (room was made).
    arrived: Notify,
    drained: Notify,
    /// Wakes every [`Inbox::closed`] waiter once the channel ended.
    ending: Notify,
}

fn size(m: &ChannelMsg) -> usize {
    match m {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
        _ => 0,
    }
}

impl Inbox {
    /// Start draining `rx` into a new inbox.
    pub fn spawn(mut rx: ChannelReadHalf) -> Arc<Inbox> {
        let inbox = Arc::new(Inbox::default());
        let me = inbox.clone();
        tokio::spawn(async move {
            loop {
                while me.lock().bytes > HARD_CAP {
                    let room = me.drained.notified();
                    if me.lock().bytes <= HARD_CAP {
                        break;
                    }
                    room.await;
                }
                let m = rx.wait().await;
                let end = matches!(m, None | Some(ChannelMsg::Close));
                {
                    let mut s = me.lock();
                    match m {
                        Some(m) => {
                            s.bytes += size(&m);
                            s.msgs.push_back(m);
                        }
                        None => s.ended = true,
                    }
                    if end {
                        s.ended = true;
                    }
                }
                me.arrived.notify_one();
                if end {
                    me.ending.notify_waiters();
                    break;
                }
            }
        });
        inbox
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next message; `None` once the channel is closed and everything was taken.
    pub async fn recv(&self) -> Option<ChannelMsg> {
        loop {
            let wait = self.arrived.notified();
            {
                let mut s = self.lock();
                if let Some(m) = s.msgs.pop_front() {
                    s.bytes -= size(&m);
                    drop(s);
                    self.drained.notify_one();
                    return Some(m);
                }
                if s.ended {
                    return None;
                }
            }
            wait.await;
        }
    }

    /// Resolves once the client closed the channel or the connection ended.
    pub async fn closed(&self) {
        loop {
            let wait = self.ending.notified();
            if self.lock().ended {
                return;
            }
            wait.await;
        }
    }

    /// More than [`SOFT_CAP`] bytes wait: the client should pause.
    pub fn congested(&self) -> bool {
        self.lock().bytes > SOFT_CAP
    }
}
