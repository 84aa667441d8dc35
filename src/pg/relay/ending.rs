//! How a session ends: last words to both sides, and the proxy's own FATAL errors placed
//! between whole server frames.
//!
//! Invariant: a message of the proxy's own reaches the client only at a frame boundary of
//! the server's stream (`inject`); mid-frame, the client just sees the connection close.

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, WriteHalf};

use super::{End, Relay};
use crate::pg::msg::{self, Fields};
use crate::pg::stream::{ClientStream, UpstreamStream};

impl Relay {
    /// Last words to both sides.
    pub(super) async fn finish(
        &mut self,
        end: &End,
        why: Option<&str>,
        cw: &mut WriteHalf<ClientStream>,
        uw: &mut WriteHalf<UpstreamStream>,
        client_eof: bool,
    ) {
        if matches!(end, End::Shutdown) && self.server.at_boundary() {
            msg::error(
                &mut self.to_client,
                Fields::new(
                    "FATAL",
                    "57P01",
                    "terminating connection due to administrator command",
                )
                .detail(why.unwrap_or("jitgate is shutting down")),
            );
        }
        if !client_eof {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                cw.write_all_buf(&mut self.to_client).await?;
                cw.shutdown().await
            })
            .await;
        }
        if !matches!(end, End::UpstreamClosed | End::ClientTerminated) {
            if self.tracker.busy() {
                // The client left mid-statement: stop the server's work, not only the socket.
                if let Err(e) = crate::pg::upstream::cancel(
                    &self.ctx.target.address,
                    self.upstream.pid,
                    self.upstream.secret,
                )
                .await
                {
                    tracing::debug!("cancel on client loss failed: {e}");
                }
            }
            let mut bye = BytesMut::new();
            msg::frame(&mut bye, b'X', &[]);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                uw.write_all(&bye).await?;
                uw.shutdown().await
            })
            .await;
        }
    }

    /// The client sent more than `cap` bytes behind a held statement: cancel its request and
    /// tell the client why the session ends.
    pub(super) fn overrun(&mut self, cap: usize) {
        let reason =
            format!("the client sent more than {cap} bytes behind a statement held for approval");
        if let Some(h) = self.held.take() {
            h.hold.cancel(&reason);
        }
        self.inject(|out| {
            msg::error(
                out,
                Fields::new("FATAL", "54000", format!("jitgate: {reason}")),
            )
        });
    }

    /// The server closed the connection.
    pub(super) fn upstream_lost(&mut self) {
        // Only add our own error between whole frames; mid-frame the client just sees EOF.
        if self.server.at_boundary() && !self.upstream_fatal {
            msg::error(
                &mut self.to_client,
                Fields::new(
                    "FATAL",
                    "08006",
                    format!(
                        "jitgate: lost the connection to target \"{}\"",
                        self.ctx.target.name
                    ),
                ),
            );
        }
    }

    /// Proxy-made message for the client, placed at the next frame boundary of the server
    /// stream.
    pub(super) fn inject(&mut self, f: impl FnOnce(&mut BytesMut)) {
        if self.server.at_boundary() {
            f(&mut self.to_client);
        } else {
            f(&mut self.injected);
        }
    }
}
