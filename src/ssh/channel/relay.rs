//! The relay of a started channel, and how it ends when the session's recording stops.
//!
//! Invariants: every byte is recorded ([`ChannelRecorder`]) before it is forwarded, either
//! way, and a line typed on a terminal is on disk before its line end is forwarded; a chunk the recording refuses is not forwarded, the target's channel is closed and
//! the user told ([`stopped`]). Each direction reads only as fast as the other side's window
//! and the audit writer ([`ChannelRecorder::room`]) allow.

use std::sync::Arc;

use russh::server::Msg;
use russh::{Channel, ChannelMsg, ChannelWriteHalf};

use super::super::Conn;
use super::super::inbox::Inbox;
use super::super::record::{ChannelRecorder, Stop};
use super::{CLOSE_GRACE, STOPPED_STATUS, Setup, control, refuse};

/// The session's recording stopped: tell the user on this channel (and in its recording),
/// end the channel, then the session.
pub(super) async fn stopped(
    conn: &Conn,
    tx: &ChannelWriteHalf<Msg>,
    rec: Option<&ChannelRecorder>,
    stop: &Stop,
    eol: &str,
) {
    let message = format!("{eol}{}{eol}", stop.user_message());
    tracing::warn!(session = %conn.ctx.id, "{}", stop.audit_reason());
    if let Some(r) = rec {
        r.notice(&message);
    }
    refuse(tx, &message, STOPPED_STATUS).await;
    conn.recording_stopped(stop);
}

/// Relay until either side closes; every byte is recorded before it is forwarded. When the
/// recording stops, nothing more is forwarded and the user is told.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay(
    conn: &Conn,
    id: russh::ChannelId,
    rx: Arc<Inbox>,
    tx: ChannelWriteHalf<Msg>,
    target: Channel<russh::client::Msg>,
    setup: Setup,
    rec: Option<&ChannelRecorder>,
    eol: &str,
) {
    let room = || async {
        if let Some(r) = rec {
            r.room().await;
        }
    };
    let input = |d: &[u8]| rec.map_or(Ok(()), |r| r.input(d));
    let output = |d: &[u8]| rec.map_or(Ok(()), |r| r.output(d));
    let (mut trx, ttx) = target.split();
    let up = async {
        for d in setup.early {
            room().await;
            input(&d)?;
            if let Some(r) = rec.filter(|r| r.ends_line(&d)) {
                r.commit().await?;
            }
            conn.count_in(d.len());
            if ttx.data_bytes(d).await.is_err() {
                return Ok(());
            }
        }
        if setup.eof {
            let _ = ttx.eof().await;
        }
        if setup.closed {
            let _ = ttx.close().await;
            return Ok(());
        }
        loop {
            match rx.recv().await {
                Some(ChannelMsg::Data { data }) => {
                    room().await;
                    input(&data)?;
                    if let Some(r) = rec.filter(|r| r.ends_line(&data)) {
                        r.commit().await?;
                    }
                    conn.count_in(data.len());
                    if ttx.data_bytes(data).await.is_err() {
                        return Ok(());
                    }
                }
                Some(ChannelMsg::Eof) => {
                    let _ = ttx.eof().await;
                }
                Some(ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                }) => {
                    if let Some(r) = rec {
                        r.resize(col_width, row_height)?;
                    }
                    let _ = ttx
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await;
                }
                Some(ChannelMsg::Signal { signal }) => {
                    let _ = ttx.signal(signal).await;
                }
                Some(ChannelMsg::Close) | None => {
                    let _ = ttx.close().await;
                    return Ok(());
                }
                Some(_) => {}
            }
        }
    };
    let down = async {
        let mut confirmed = false;
        // The target's EOF (sshd sends it just before the exit status) is passed on after
        // the exit status, or with the close: a client whose input has ended closes the
        // channel on EOF, and an exit status relayed after that would be lost.
        let mut eof_held = false;
        loop {
            match trx.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    room().await;
                    output(&data)?;
                    conn.count_out(data.len());
                    if tx.data_bytes(data).await.is_err() {
                        return Ok(());
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    room().await;
                    output(&data)?;
                    conn.count_out(data.len());
                    if tx.extended_data_bytes(ext, data).await.is_err() {
                        return Ok(());
                    }
                }
                Some(ChannelMsg::Eof) => eof_held = true,
                Some(ChannelMsg::Close) | None => {
                    if eof_held {
                        let _ = tx.eof().await;
                    }
                    let _ = tx.close().await;
                    return Ok(());
                }
                Some(other) => {
                    let exit = matches!(
                        other,
                        ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }
                    );
                    control(conn, id, &tx, other, &mut confirmed).await;
                    if exit && std::mem::take(&mut eof_held) {
                        let _ = tx.eof().await;
                    }
                }
            }
        }
    };
    let ended: Result<(), Stop> = {
        let force = conn.forced();
        tokio::pin!(up, down, force);
        tokio::select! {
            // The target closed: nothing more can reach it, so stop reading the user.
            r = &mut down => r,
            r = &mut up => match r {
                // The user closed: give the target a moment to close its side.
                Ok(()) => tokio::time::timeout(CLOSE_GRACE, &mut down)
                    .await
                    .unwrap_or(Ok(())),
                Err(stop) => Err(stop),
            },
            _ = &mut force => {
                let _ = tx.close().await;
                Ok(())
            }
        }
    };
    if let Err(stop) = ended {
        // Whatever the target still runs on this channel ends with it.
        let _ = ttx.close().await;
        stopped(conn, &tx, rec, &stop, eol).await;
    }
}
