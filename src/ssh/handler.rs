//! The russh server handler of one connection: authentication, channel opens and the
//! replies to channel requests.
//!
//! Invariants: the handler runs inside russh's connection loop, so no callback waits on
//! anything slow (a Gate hold, a target connection): channel work happens on the tasks of
//! [`super::channel`] and [`super::forward`]. Before authentication no channel exists; after
//! it every session channel gets its own task. Agent forwarding, X11, remote forwarding and
//! stream-local forwarding are refused.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, ChannelWriteHalf, Pty};

use super::channel::env_allowed;
use super::inbox::{Inbox, TRICKLE_PACE, TRICKLE_WINDOW};
use super::{Conn, SshServer, auth, channel, forward};
use crate::config::{Target, User};
use crate::gate::SessionCtx;
use crate::lifecycle::{Admission, Slot};

pub(super) struct ConnHandler {
    server: Arc<SshServer>,
    peer: SocketAddr,
    connection: Arc<OnceLock<Arc<Conn>>>,
    who: Option<(Arc<User>, Arc<Target>)>,
    /// Channels that already had their exec/shell/subsystem request.
    started: HashSet<ChannelId>,
    /// Each open channel's inbox, for window throttling.
    inboxes: HashMap<ChannelId, Weak<Inbox>>,
    window: u32,
    /// Becomes a session slot when the user authenticates.
    admission: Admission,
    /// Held for as long as the connection is a session.
    slot: Option<Slot>,
}

impl ConnHandler {
    pub fn new(
        server: Arc<SshServer>,
        peer: SocketAddr,
        connection: Arc<OnceLock<Arc<Conn>>>,
        admission: Admission,
    ) -> Self {
        ConnHandler {
            window: server.config.window_size,
            server,
            peer,
            connection,
            who: None,
            started: HashSet::new(),
            inboxes: HashMap::new(),
            admission,
            slot: None,
        }
    }

    fn conn(&self) -> Option<&Arc<Conn>> {
        self.connection.get()
    }

    fn inbox(&mut self, ch: Channel<Msg>) -> (ChannelId, Arc<Inbox>, ChannelWriteHalf<Msg>) {
        let id = ch.id();
        let (rx, tx) = ch.split();
        let inbox = Inbox::spawn(rx);
        self.inboxes.retain(|_, w| w.strong_count() > 0);
        self.inboxes.insert(id, Arc::downgrade(&inbox));
        (id, inbox, tx)
    }

    fn congested(&self, channel: ChannelId) -> bool {
        self.inboxes
            .get(&channel)
            .and_then(Weak::upgrade)
            .is_some_and(|i| i.congested())
    }

    fn start(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if self.started.insert(channel) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }
}

impl russh::server::Handler for ConnHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let config = self.server.app.config();
        Ok(match auth::identify(&config, user, offer.public_key) {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let config = self.server.app.config();
        match auth::identify(&config, user, key.public_key) {
            Some(who) => {
                self.who = Some(who);
                Ok(Auth::Accept)
            }
            None => {
                tracing::info!(peer = %self.peer, target = %crate::escape::terminal(user), "ssh public key refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some((user, target)) = self.who.clone() else {
            return Err(russh::Error::NotAuthenticated);
        };
        self.slot = self.admission.authenticated();
        if self.slot.is_none() {
            tracing::info!(peer = %self.peer, "ssh session refused: max_connections reached");
            return session.disconnect(
                russh::Disconnect::TooManyConnections,
                "too many sessions",
                "en",
            );
        }
        let ctx = SessionCtx {
            id: crate::approval::new_id("s").into(),
            user,
            target,
            source: self.peer.ip(),
            protocol: crate::lifecycle::Protocol::Ssh,
            backlog: self.server.app.audit.backlog(),
        };
        let version = String::from_utf8_lossy(session.remote_sshid()).into_owned();
        let conn = Conn::new(
            self.server.clone(),
            ctx,
            session.handle(),
            self.peer,
            version.trim(),
        );
        let _ = self.connection.set(conn);
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        ch: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn().cloned() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if conn.draining() {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        reply.accept().await;
        let (id, inbox, tx) = self.inbox(ch);
        tokio::spawn(channel::run(conn, id, inbox, tx));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        ch: Channel<Msg>,
        host: &str,
        port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(conn) = self.conn().cloned() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let req = forward::Request {
            host: host.to_string(),
            port,
            originator_address: originator_address.to_string(),
            originator_port,
        };
        let (_, inbox, tx) = self.inbox(ch);
        tokio::spawn(forward::run(conn, inbox, tx, reply, req));
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if env_allowed(name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    /// The window russh grants next: the full window, or a trickle while this channel's
    /// inbox is over its cap (see [`super::inbox`]).
    fn adjust_window(&mut self, channel: ChannelId, _current: u32) -> u32 {
        if self.congested(channel) {
            TRICKLE_WINDOW
        } else {
            self.window
        }
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.congested(channel) {
            tokio::time::sleep(TRICKLE_PACE).await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.started.remove(&channel);
        self.inboxes.remove(&channel);
        Ok(())
    }
}
