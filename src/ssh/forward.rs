//! `direct-tcpip` (ssh -L): class `port_forward`, statement `direct-tcpip HOST:PORT`.
//!
//! Invariants: the user's channel is confirmed only after the Gate allowed it and the target
//! opened the matching `direct-tcpip` channel; a refusal is a channel-open failure carrying
//! the refusal's message (ssh prints it). The relay moves data and EOF both ways, each write
//! waiting for the receiver's window, and closes both channels when either closes.
//! A held forward watches its session: once the connection ended the request is withdrawn
//! and a later approval never makes the target connect.

use std::sync::Arc;

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure, ChannelWriteHalf};

use super::Conn;
use super::hold;
use super::inbox::Inbox;
use super::trail;
use crate::policy::{Class, Classification};

/// SSH_OPEN_ADMINISTRATIVELY_PROHIBITED.
const PROHIBITED: u32 = 1;

pub(super) struct Request {
    pub host: String,
    pub port: u32,
    pub originator_address: String,
    pub originator_port: u32,
}

pub(super) async fn run(
    conn: Arc<Conn>,
    inbox: Arc<Inbox>,
    tx: ChannelWriteHalf<Msg>,
    reply: ChannelOpenHandle,
    req: Request,
) {
    let statement = format!("direct-tcpip {}:{}", req.host, req.port);
    let c = Classification::bare(Class::PortForward, "port forwarding");
    let pending = trail::decide(&conn.app, &conn.ctx, &statement, &c);
    // The channel is not open yet: the client cannot close it, but the connection's end
    // closes its inbox, and `hold::outcome` watches the session too.
    let Some(outcome) = hold::outcome(&conn, pending, None, inbox.closed()).await else {
        tracing::info!(statement = %crate::escape::terminal(&statement), "port forward withdrawn: the session ended");
        return;
    };
    if let Err(r) = outcome {
        tracing::info!(statement = %crate::escape::terminal(&statement), "refused: {}", r.message);
        let reason = ChannelOpenFailure::Other {
            code: PROHIBITED,
            reason: r.message,
        };
        reply.reject(reason).await;
        return;
    }
    let up = match conn.upstream().await {
        Ok(u) => u,
        Err(e) => {
            reply
                .reject(ChannelOpenFailure::Other {
                    code: PROHIBITED,
                    reason: e.user_message(),
                })
                .await;
            return;
        }
    };
    let target = match up
        .handle
        .channel_open_direct_tcpip(
            req.host.clone(),
            req.port,
            req.originator_address,
            req.originator_port,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(statement = %crate::escape::terminal(&statement), "target refused the forward: {e}");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    reply.accept().await;
    pump(&conn, inbox, tx, target).await;
}

async fn pump(
    conn: &Conn,
    urx: Arc<Inbox>,
    utx: ChannelWriteHalf<Msg>,
    target: Channel<russh::client::Msg>,
) {
    let (mut trx, ttx) = target.split();
    let up = copy(Source::User(&urx), &ttx, |n| conn.count_in(n));
    let down = copy(Source::Target(&mut trx), &utx, |n| conn.count_out(n));
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = conn.forced() => {}
    }
    let _ = ttx.close().await;
    let _ = utx.close().await;
}

/// Where one direction of a forward reads from.
enum Source<'a> {
    User(&'a Inbox),
    Target(&'a mut russh::ChannelReadHalf),
}

impl Source<'_> {
    async fn next(&mut self) -> Option<ChannelMsg> {
        match self {
            Source::User(inbox) => inbox.recv().await,
            Source::Target(channel) => channel.wait().await,
        }
    }
}

/// Moves data (counted by `count`) and EOF from `from` to `sink` until either side closes.
async fn copy<S>(mut from: Source<'_>, sink: &ChannelWriteHalf<S>, count: impl Fn(usize))
where
    S: From<(russh::ChannelId, ChannelMsg)> + Send + Sync + 'static,
{
    loop {
        match from.next().await {
            Some(ChannelMsg::Data { data }) => {
                count(data.len());
                if sink.data_bytes(data).await.is_err() {
                    break;
                }
            }
            Some(ChannelMsg::Eof) => {
                let _ = sink.eof().await;
            }
            Some(ChannelMsg::Close) | None => break,
            Some(_) => {}
        }
    }
}
