//! TLS towards a Postgres server (a target, or the cluster's state database), as libpq's
//! modes say: the client config, and the name a certificate is checked against.
//!
//! Invariant: a certificate is verified (chain and host name) exactly when a `ca_file` is
//! given; without one the link is encrypted but unauthenticated (`NoVerify`), like libpq's
//! `sslmode=require`, and `disable` builds no config at all.

use std::sync::Arc;

use tokio_rustls::rustls;

use super::UpstreamError;
use crate::config::{Target, UpstreamTls};

/// Build the rustls client config for a target (once per target, reused).
pub fn tls_config(target: &Target) -> Result<Option<Arc<rustls::ClientConfig>>, UpstreamError> {
    client_tls_config(target.tls, target.ca_file.as_deref())
}

/// The rustls client config for a Postgres server with TLS mode `tls` and root CA `ca_file`
/// (the targets' rules; the cluster's state database uses them too).
pub fn client_tls_config(
    tls: UpstreamTls,
    ca_file: Option<&std::path::Path>,
) -> Result<Option<Arc<rustls::ClientConfig>>, UpstreamError> {
    if tls == UpstreamTls::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let config = match ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let pem = std::fs::read(ca)?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer =
                    cert.map_err(|e| UpstreamError::Tls(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// Encryption without authentication, as libpq's `sslmode=prefer|require` without a root CA.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(super) fn server_name(
    address: &str,
) -> Result<rustls::pki_types::ServerName<'static>, UpstreamError> {
    let host = match address.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    };
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| UpstreamError::Tls(format!("bad server name {host:?}: {e}")))
}
