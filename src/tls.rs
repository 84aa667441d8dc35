//! TLS for the listeners (Postgres SSLRequest and the API), with the aws-lc provider only.
//!
//! [`reloadable_server_config`] serves its certificate through a [`CertStore`], so a SIGHUP can
//! swap in a renewed certificate and key: handshakes after the swap use the new pair, sessions
//! already established keep theirs.

use std::path::Path;
use std::sync::{Arc, RwLock};

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::File(cert.display().to_string(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::File(
            cert.display().to_string(),
            "no certificate found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::File(key.display().to_string(), e.to_string()))?;
    Ok((certs, key))
}

pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key) = read_pem(cert, key)?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The certificate and key the listeners present; replaced whole by [`CertStore::install`].
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads and checks a certificate chain and its key (the key must match the leaf).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
        let (certs, key) = read_pem(cert, key)?;
        Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider())?))
    }

    /// Makes `key` the pair that new handshakes get.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Like [`server_config`], with the certificate held in a [`CertStore`] that a reload can update.
pub fn reloadable_server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Arc<CertStore>), TlsError> {
    let store = Arc::new(CertStore {
        current: RwLock::new(CertStore::load(cert, key)?),
    });
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store.clone());
    Ok((Arc::new(config), store))
}
