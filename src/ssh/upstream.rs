//! The proxy as an SSH client of the target: connect, check the pinned host key,
//! authenticate with the target's `key_file` as the target's `user`.
//!
//! Invariants:
//! - The target's host key must equal the pinned `host_key` (key data compared; a
//!   certificate is refused). On a mismatch the connection is dropped before authentication,
//!   so the target's credentials are never offered to an impostor; the error names both
//!   fingerprints for the log and the audit trail, and users only see that the key did not
//!   match.
//! - RSA client keys sign with SHA-512 or SHA-256 (what the server advertises, SHA-256 when
//!   it advertises nothing), never SHA-1.
//! - Private keys are read once per target and kept in memory; they are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::config::Target;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("target {target}: host key mismatch: pinned {expected}, offered {offered}")]
    HostKeyMismatch {
        target: String,
        expected: String,
        offered: String,
    },
    #[error("target {0}: cannot connect to {1}: {2}")]
    Connect(String, String, String),
    #[error("target {0}: connection timed out")]
    Timeout(String),
    #[error("target {0}: authentication as {1} was refused")]
    AuthRefused(String, String),
    #[error("target {0}: configuration: {1}")]
    Config(String, String),
}

impl UpstreamError {
    /// What the user is told: no addresses, keys or fingerprints.
    pub(crate) fn user_message(&self) -> String {
        match self {
            UpstreamError::HostKeyMismatch { target, .. } => format!(
                "jitgate: target \"{target}\" presented a host key that does not match the pinned key; session refused"
            ),
            UpstreamError::Connect(t, ..)
            | UpstreamError::Timeout(t)
            | UpstreamError::AuthRefused(t, _)
            | UpstreamError::Config(t, _) => format!("jitgate: cannot connect to target \"{t}\""),
        }
    }

    /// A short reason for the audit trail's SessionEnd.
    pub(crate) fn audit_reason(&self) -> String {
        match self {
            UpstreamError::HostKeyMismatch { .. } => format!("target host key mismatch: {self}"),
            _ => format!("target connection failed: {self}"),
        }
    }
}

/// Makes target connections; caches each target's private key.
pub(crate) struct Connector {
    config: Arc<client::Config>,
    keys: Mutex<HashMap<String, Arc<PrivateKey>>>,
}

/// An authenticated connection to a target.
pub(crate) struct Upstream {
    pub handle: Handle<Pinned>,
}

impl Upstream {
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// The client handler: accepts exactly the pinned host key.
pub(crate) struct Pinned {
    pinned: PublicKey,
    offered: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (ok, shown) = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => (
                key.key_data() == self.pinned.key_data(),
                key.fingerprint(HashAlg::Sha256).to_string(),
            ),
            PublicKeyOrCertificate::Certificate(c) => (
                false,
                format!(
                    "a certificate ({})",
                    c.public_key().fingerprint(HashAlg::Sha256)
                ),
            ),
        };
        if !ok {
            *self.offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(shown);
        }
        Ok(ok)
    }
}

impl Connector {
    pub fn new(channel_buffer_size: usize) -> Connector {
        let config = client::Config {
            client_id: russh::SshId::Standard(
                format!("SSH-2.0-jitgate_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            channel_buffer_size,
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            nodelay: true,
            // AES-GCM first: aws-lc runs it on AES-NI, several times faster than russh's
            // ChaCha20-Poly1305 for bulk transfers; targets that lack it negotiate the rest.
            preferred: russh::Preferred {
                cipher: std::borrow::Cow::Owned(
                    [
                        russh::cipher::AES_256_GCM,
                        russh::cipher::CHACHA20_POLY1305,
                        russh::cipher::AES_256_CTR,
                        russh::cipher::AES_192_CTR,
                        russh::cipher::AES_128_CTR,
                    ]
                    .to_vec(),
                ),
                ..russh::Preferred::DEFAULT
            },
            ..client::Config::default()
        };
        Connector {
            config: Arc::new(config),
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, target: &Target) -> Result<Arc<PrivateKey>, UpstreamError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get(&target.name) {
            return Ok(k.clone());
        }
        let path = target
            .key_file
            .as_ref()
            .ok_or_else(|| UpstreamError::Config(target.name.clone(), "no key_file".into()))?;
        let key = russh::keys::load_secret_key(path, None).map_err(|e| {
            UpstreamError::Config(
                target.name.clone(),
                format!("cannot load {}: {e}", path.display()),
            )
        })?;
        let key = Arc::new(key);
        keys.insert(target.name.clone(), key.clone());
        Ok(key)
    }

    pub async fn connect(
        &self,
        target: &Target,
        timeout: Duration,
    ) -> Result<Upstream, UpstreamError> {
        tokio::time::timeout(timeout, self.connect_now(target))
            .await
            .unwrap_or_else(|_| Err(UpstreamError::Timeout(target.name.clone())))
    }

    async fn connect_now(&self, target: &Target) -> Result<Upstream, UpstreamError> {
        let name = target.name.clone();
        let pinned = target
            .host_key
            .as_deref()
            .map(PublicKey::from_openssh)
            .and_then(Result::ok)
            .ok_or_else(|| UpstreamError::Config(name.clone(), "no valid host_key".into()))?;
        let key = self.key(target)?;
        let offered = Arc::new(Mutex::new(None));
        let expected = pinned.fingerprint(HashAlg::Sha256).to_string();
        let handler = Pinned {
            pinned,
            offered: offered.clone(),
        };
        let connected =
            client::connect(self.config.clone(), target.address.as_str(), handler).await;
        let mut handle = match connected {
            Ok(h) => h,
            Err(e) => {
                if let Some(offered) = offered.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(UpstreamError::HostKeyMismatch {
                        target: name,
                        expected,
                        offered,
                    });
                }
                return Err(UpstreamError::Connect(
                    name,
                    target.address.clone(),
                    e.to_string(),
                ));
            }
        };
        let hash = if key.algorithm().is_rsa() {
            match handle.best_supported_rsa_hash().await {
                Ok(Some(Some(h))) => Some(h),
                _ => Some(HashAlg::Sha256),
            }
        } else {
            None
        };
        let auth = handle
            .authenticate_publickey(target.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
            .await
            .map_err(|e| {
                UpstreamError::Connect(name.clone(), target.address.clone(), e.to_string())
            })?;
        match auth {
            AuthResult::Success => Ok(Upstream { handle }),
            AuthResult::Failure { .. } => {
                Err(UpstreamError::AuthRefused(name, target.user.clone()))
            }
        }
    }
}
