//! Waiting for a held action inside a live session: exec and shell starts, SFTP operations,
//! port forwards.
//!
//! Invariants:
//! - The wait ends with the client: the channel closing (seen by the caller's `closed`
//!   future, which keeps reading the channel), the connection ending ([`Conn::gone`]) or a
//!   forced shutdown return `None`, and dropping the wait withdraws the request at once.
//! - Telling the user is never in the way: the held line is written while the wait runs, so
//!   a client that grants no window delays only the line, never the hold's expiry (whose
//!   clock started when the request was created).
//! - A decision that is ready wins over everything else (the select is biased), so an
//!   approval is never lost to a notice that happened to be polled first.

use std::future::Future;

use bytes::Bytes;
use russh::ChannelWriteHalf;
use russh::server::Msg;

use super::Conn;
use super::trail::{Outcome, Pending};

/// How long writing a refusal to a client may take before the channel is closed anyway
/// (a client that grants no window never reads it).
pub(super) const NOTICE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The outcome of `pending`, or `None` when the client left (or jitgate is shutting down)
/// first. `notice` is where the held line goes (stderr of a session channel) and its line
/// ending; `closed` resolves when the client closed the channel.
pub(super) async fn outcome(
    conn: &Conn,
    pending: Pending,
    notice: Option<(&ChannelWriteHalf<Msg>, &str)>,
    closed: impl Future<Output = ()>,
) -> Option<Outcome> {
    let (request, wait) = match pending {
        Pending::Ready(o) => return Some(o),
        Pending::Later { request, wait } => (request, wait),
    };
    if let Some(id) = &request {
        tracing::info!(request = %id, "held for approval");
    }
    let tell = async {
        if let (Some(id), Some((tx, eol))) = (&request, notice) {
            let line = format!("{}{eol}", super::trail::held_line(id));
            let _ = tx.extended_data_bytes(1, Bytes::from(line)).await;
        }
        std::future::pending::<()>().await
    };
    let outcome = tokio::select! {
        biased;
        o = wait => Some(o),
        _ = closed => None,
        _ = conn.gone() => None,
        _ = conn.forced() => None,
        _ = tell => None,
    };
    // Approved after the client left: the session is over, nothing goes to the target.
    outcome.filter(|_| !conn.is_gone())
}
