//! Connections to the state database: tokio-postgres over the same TLS rules as a Postgres
//! target (`state_tls` = a target's `tls`, `state_ca_file` = its `ca_file`; see
//! [`crate::pg::upstream::client_tls_config`]).
//!
//! Invariants: the password comes only from the validated config's secret; over TLS, SCRAM
//! binds to the certificate the state database presented (`tls-server-end-point`), as the
//! targets' connections do; every connect has a timeout, so a state database that does not
//! answer is reported as unreachable instead of hanging the caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Connection, Socket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use super::StateError;
use crate::config::{Cluster, UpstreamTls};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the state database's connections are made with: the settings and the TLS config,
/// built once.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: StateTls,
}

impl Connector {
    pub fn new(cluster: &Cluster) -> Result<Connector, StateError> {
        let tls = crate::pg::upstream::client_tls_config(
            cluster.state_tls,
            cluster.state_ca_file.as_deref(),
        )
        .map_err(|e| StateError::Tls(e.to_string()))?;
        let mut config = cluster.state.clone();
        if let Some(p) = &cluster.state_password {
            config.password(p.expose().as_bytes());
        }
        config.ssl_mode(match cluster.state_tls {
            UpstreamTls::Disable => SslMode::Disable,
            UpstreamTls::Prefer => SslMode::Prefer,
            UpstreamTls::Require => SslMode::Require,
        });
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name(format!("jitgate {}", cluster.node));
        config.keepalives_idle(Duration::from_secs(10));
        Ok(Connector {
            config,
            tls: StateTls(tls),
        })
    }

    /// One connection; the caller drives the [`Connection`] (see [`Self::client`]).
    pub async fn connect(&self) -> Result<(Client, Connection<Socket, StateStream>), StateError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.config.connect(self.tls.clone())).await {
            Ok(Ok(pair)) => Ok(pair),
            Ok(Err(e)) => Err(StateError::Unreachable(e.to_string())),
            Err(_) => Err(StateError::Unreachable(format!(
                "no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// One connection whose messages are driven by a task of its own (notifications are
    /// dropped: LISTEN uses [`Self::connect`]).
    pub async fn client(&self) -> Result<Client, StateError> {
        let (client, connection) = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "state database connection ended");
            }
        });
        Ok(client)
    }
}

/// tokio-postgres' TLS hook: `None` when `state_tls = "disable"`.
#[derive(Clone)]
pub struct StateTls(Option<Arc<rustls::ClientConfig>>);

impl MakeTlsConnect<Socket> for StateTls {
    type Stream = StateStream;
    type TlsConnect = StateTlsConnect;
    type Error = StateError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<StateTlsConnect, StateError> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| StateError::Tls(format!("bad server name {domain:?}: {e}")))?;
        Ok(StateTlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct StateTlsConnect {
    config: Option<Arc<rustls::ClientConfig>>,
    name: ServerName<'static>,
}

type Connecting = Pin<Box<dyn Future<Output = Result<StateStream, StateError>> + Send>>;

impl TlsConnect<Socket> for StateTlsConnect {
    type Stream = StateStream;
    type Error = StateError;
    type Future = Connecting;

    fn connect(self, stream: Socket) -> Connecting {
        Box::pin(async move {
            let Some(config) = self.config else {
                return Err(StateError::Tls("TLS is disabled (state_tls)".into()));
            };
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(self.name, stream)
                .await
                .map_err(|e| StateError::Tls(e.to_string()))?;
            let binding = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| crate::tls::server_end_point(leaf));
            Ok(StateStream { tls, binding })
        })
    }
}

/// A TLS link to the state database, with its channel-binding data.
pub struct StateStream {
    tls: tokio_rustls::client::TlsStream<Socket>,
    binding: Option<Vec<u8>>,
}

impl tokio_postgres::tls::TlsStream for StateStream {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.binding {
            Some(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
            None => ChannelBinding::none(),
        }
    }
}

impl AsyncRead for StateStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for StateStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}
