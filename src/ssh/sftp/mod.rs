//! The `sftp` subsystem, decided per operation: jitgate reads SFTP v3 on the channel and
//! takes every request that names a path to the Gate like an exec command (`read` or
//! `write` on its paths, see [`operation`]); modern `scp` speaks SFTP too.
//!
//! Opening the subsystem is class `file_transfer` and is only refused when the rules deny
//! it ([`crate::gate::Gate::check_opening`]): it reads and writes nothing by itself.
//!
//! Invariants:
//! - No request reaches the target undecided: client bytes go to the target only as whole
//!   packets, each either passed by [`operation::classify`] (handle requests, INIT) or
//!   allowed by the Gate. A refused request is answered with `SSH_FXP_STATUS`
//!   `SSH_FX_PERMISSION_DENIED` carrying the refusal; a held one stops the client's stream
//!   behind it (queued in the channel's inbox, which throttles the client's window) until
//!   it is decided, and the channel's close or the connection's end withdraws it.
//! - Replies reach the client as whole packets, so a refusal jitgate writes never splits
//!   one of the target's.
//! - A packet over [`packet::MAX_PACKET`], a field past its packet's end or a target that
//!   does not speak version 3 is a protocol error: both channels are closed.

mod operation;
mod packet;

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use russh::server::Msg;
use russh::{Channel, ChannelId, ChannelMsg, ChannelWriteHalf};
use tokio::sync::mpsc;

use super::Conn;
use super::channel::control;
use super::hold;
use super::inbox::Inbox;
use super::trail;
use crate::policy::Classification;
use operation::{Ask, Handles, Operation};
use packet::{FX_PERMISSION_DENIED, Framer, PacketError};

/// Refusals waiting to be written to the client between the target's packets.
const REFUSALS_QUEUED: usize = 16;

/// What the client sent before the subsystem was opened.
pub(super) struct Early {
    pub data: Vec<Bytes>,
    pub eof: bool,
    pub closed: bool,
}

/// Relay one SFTP session between the user's channel and the target's.
pub(super) async fn relay(
    conn: &Conn,
    id: ChannelId,
    rx: Arc<Inbox>,
    tx: ChannelWriteHalf<Msg>,
    target: Channel<russh::client::Msg>,
    early: Early,
) {
    let (mut trx, ttx) = target.split();
    let handles = Mutex::new(Handles::default());
    let (refusals, mut refused) = mpsc::channel::<Bytes>(REFUSALS_QUEUED);
    let up = async {
        let mut framer = Framer::default();
        let mut early_data = early.data.into_iter();
        let mut early_end = (early.eof, early.closed);
        loop {
            let data = match early_data.next() {
                Some(d) => d,
                None => {
                    let m = match std::mem::take(&mut early_end) {
                        (_, true) => Some(ChannelMsg::Close),
                        (true, false) => Some(ChannelMsg::Eof),
                        (false, false) => rx.recv().await,
                    };
                    match m {
                        Some(ChannelMsg::Data { data }) => data,
                        Some(ChannelMsg::Eof) => {
                            let _ = ttx.eof().await;
                            continue;
                        }
                        Some(ChannelMsg::Close) | None => return Ok(()),
                        Some(_) => continue,
                    }
                }
            };
            conn.count_in(data.len());
            framer.push(&data);
            let mut batch = BytesMut::new();
            while let Some(request) = framer.next_packet()? {
                let ask = operation::classify(&request, &mut lock(&handles))?;
                let op = match ask {
                    Ask::Pass => {
                        batch.extend_from_slice(&request);
                        continue;
                    }
                    Ask::Decide(op) => op,
                };
                // Everything before a held request reaches the target first.
                if send(&ttx, &mut batch).await.is_err() {
                    return Ok(());
                }
                let Some(outcome) = decide(conn, &op, &tx, &rx).await else {
                    // The client left: dropping the wait withdrew the request.
                    return Ok(());
                };
                match outcome {
                    Ok(_permit) => {
                        if let Some(path) = op.opens {
                            lock(&handles).expect(op.id, path);
                        }
                        batch.extend_from_slice(&request);
                    }
                    Err(refusal) => {
                        tracing::info!(statement = %crate::escape::terminal(&op.statement), "refused: {}", refusal.message);
                        let reply = packet::status(op.id, FX_PERMISSION_DENIED, &refusal.message);
                        if refusals.send(reply).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            if send(&ttx, &mut batch).await.is_err() {
                return Ok(());
            }
        }
    };
    let down = async {
        let mut framer = Framer::default();
        let mut confirmed = false;
        loop {
            let m = tokio::select! {
                m = trx.wait() => m,
                Some(reply) = refused.recv() => {
                    if tx.data_bytes(reply).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            match m {
                Some(ChannelMsg::Data { data }) => {
                    conn.count_out(data.len());
                    framer.push(&data);
                    let mut batch = BytesMut::new();
                    while let Some(reply) = framer.next_packet()? {
                        lock(&handles).reply(&reply)?;
                        batch.extend_from_slice(&reply);
                    }
                    if !batch.is_empty() && tx.data_bytes(batch.freeze()).await.is_err() {
                        return Ok(());
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    conn.count_out(data.len());
                    let _ = tx.extended_data_bytes(ext, data).await;
                }
                Some(ChannelMsg::Close) | None => return Ok(()),
                Some(other) => control(conn, id, &tx, other, &mut confirmed).await,
            }
        }
    };
    let force = conn.forced();
    tokio::pin!(up, down, force);
    let ended: Result<(), PacketError> = tokio::select! {
        r = &mut down => r,
        r = &mut up => match r {
            // The user closed: give the target a moment to finish its side.
            Ok(()) => {
                let _ = ttx.close().await;
                tokio::time::timeout(super::channel::CLOSE_GRACE, &mut down)
                    .await
                    .unwrap_or(Ok(()))
            }
            Err(e) => Err(e),
        },
        _ = &mut force => Ok(()),
    };
    if let Err(e) = ended {
        tracing::info!(session = %conn.ctx.id, "sftp protocol error, channel closed: {e}");
        let message = format!("jitgate: sftp protocol error: {e}\n");
        let _ = tokio::time::timeout(
            hold::NOTICE_LIMIT,
            tx.extended_data_bytes(1, Bytes::from(message)),
        )
        .await;
        let _ = tx.eof().await;
    }
    let _ = ttx.close().await;
    let _ = tx.close().await;
}

/// The Gate's outcome for one operation; `None` when the client left while it was held.
async fn decide(
    conn: &Conn,
    op: &Operation,
    tx: &ChannelWriteHalf<Msg>,
    rx: &Inbox,
) -> Option<trail::Outcome> {
    let classification = Classification {
        paths: op.paths.clone(),
        ..Classification::bare(op.class, format!("sftp operation ({})", op.class))
    };
    let pending = trail::decide(&conn.app, &conn.ctx, &op.statement, &classification);
    hold::outcome(conn, pending, Some((tx, "\n")), rx.closed()).await
}

/// Write `batch` (whole packets) to the target and empty it.
async fn send(ttx: &ChannelWriteHalf<russh::client::Msg>, batch: &mut BytesMut) -> Result<(), ()> {
    if batch.is_empty() {
        return Ok(());
    }
    ttx.data_bytes(batch.split().freeze()).await.map_err(|_| ())
}

fn lock(handles: &Mutex<Handles>) -> std::sync::MutexGuard<'_, Handles> {
    handles.lock().unwrap_or_else(|p| p.into_inner())
}
