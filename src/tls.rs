//! TLS for the listeners (Postgres SSLRequest and the API), with the aws-lc provider only.
//!
//! [`reloadable_server_config`] serves its certificate through a [`CertStore`], so a SIGHUP can
//! swap in a renewed certificate and key: handshakes after the swap use the new pair, sessions
//! already established keep theirs.
//!
//! Channel binding: [`accept_telling_certificate`] fixes the certificate of one handshake when
//! the client says hello and returns it, so a SCRAM exchange binds to exactly the certificate
//! that client was shown, whatever a reload does meanwhile; [`server_end_point`] is RFC 5929's
//! `tls-server-end-point` data of a certificate (both directions of the proxy use it).

use std::path::Path;
use std::sync::{Arc, RwLock};

use sha2::Digest;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor, rustls};

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

/// A server-side handshake with `acceptor`'s configuration in which the certificate is chosen
/// once, when the ClientHello arrives, and returned with the stream (the leaf, `None` if the
/// configuration has none to serve). Sessions are never resumed (as PostgreSQL, which turns
/// off OpenSSL's session cache and tickets): a resumed session would show the client the
/// certificate of an earlier handshake, which a reload may have replaced since.
pub async fn accept_telling_certificate(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> std::io::Result<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Option<CertificateDer<'static>>,
)> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let base = acceptor.config();
    let Some(key) = base.cert_resolver.resolve(start.client_hello()) else {
        // Nothing to serve: rustls fails the handshake as it would have anyway.
        return Ok((start.into_stream(base.clone()).await?, None));
    };
    let leaf = key.end_entity_cert().ok().map(|c| c.clone().into_owned());
    let mut config = (**base).clone();
    config.cert_resolver = Arc::new(SingleCertAndKey::from(key));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let stream = start.into_stream(Arc::new(config)).await?;
    Ok((stream, leaf))
}

/// The `tls-server-end-point` channel-binding data of a DER certificate (RFC 5929 §4.1): its
/// hash with the hash function of its signature algorithm, SHA-256 when that is MD5 or SHA-1.
/// `None` when the algorithm names no hash function (Ed25519, RSASSA-PSS, …) or the DER is not
/// a certificate: then no binding is possible, and none is offered or attempted.
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let hash = end_point_hash(signature_algorithm(cert_der)?)?;
    Some(match hash {
        EndPointHash::Sha224 => sha2::Sha224::digest(cert_der).to_vec(),
        EndPointHash::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
        EndPointHash::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
        EndPointHash::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The hash RFC 5929 picks for a signature algorithm (the content bytes of its OID).
fn end_point_hash(oid: &[u8]) -> Option<EndPointHash> {
    // 1.2.840.113549.1.1.n: PKCS #1 RSA signatures; 1.2.840.10045.4…: ECDSA.
    const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
    if let Some(rest) = oid.strip_prefix(PKCS1) {
        return match rest {
            [4] | [5] | [11] => Some(EndPointHash::Sha256), // MD5, SHA-1, SHA-256
            [12] => Some(EndPointHash::Sha384),
            [13] => Some(EndPointHash::Sha512),
            [14] => Some(EndPointHash::Sha224),
            _ => None,
        };
    }
    if oid == ECDSA_SHA1 {
        return Some(EndPointHash::Sha256);
    }
    match oid.strip_prefix(ECDSA_SHA2)? {
        [1] => Some(EndPointHash::Sha224),
        [2] => Some(EndPointHash::Sha256),
        [3] => Some(EndPointHash::Sha384),
        [4] => Some(EndPointHash::Sha512),
        _ => None,
    }
}

/// The OID of `Certificate.signatureAlgorithm` (RFC 5280 §4.1: SEQUENCE { tbsCertificate
/// SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, signatureValue }).
fn signature_algorithm(cert_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    let (SEQUENCE, certificate, _) = der_element(cert_der)? else {
        return None;
    };
    let (SEQUENCE, _, after_tbs) = der_element(certificate)? else {
        return None;
    };
    let (SEQUENCE, algorithm, _) = der_element(after_tbs)? else {
        return None;
    };
    match der_element(algorithm)? {
        (OID, oid, _) => Some(oid),
        _ => None,
    }
}

/// One DER element off the front of `b`: tag, contents, what follows. Bounds-checked only.
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let digits = rest.get(..n)?;
        let len = digits
            .iter()
            .fold(0usize, |len, &d| (len << 8) | usize::from(d));
        (len, rest.get(n..)?)
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params
            .self_signed(&key)
            .expect("self-signed")
            .der()
            .to_vec()
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let p256 = certificate(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            server_end_point(&p256),
            Some(sha2::Sha256::digest(&p256).to_vec())
        );
        let p384 = certificate(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(
            server_end_point(&p384),
            Some(sha2::Sha384::digest(&p384).to_vec())
        );
        let p521 = certificate(&rcgen::PKCS_ECDSA_P521_SHA512);
        assert_eq!(
            server_end_point(&p521),
            Some(sha2::Sha512::digest(&p521).to_vec())
        );
        // Ed25519 names no hash function: RFC 5929 defines no binding.
        assert_eq!(server_end_point(&certificate(&rcgen::PKCS_ED25519)), None);
    }

    /// A certificate-shaped DER with the signature algorithm `oid` (contents bytes).
    fn shaped(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![0x06, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        algorithm.extend_from_slice(&[0x05, 0x00]);
        let mut body = vec![0x30, 0x03, 0x02, 0x01, 0x02, 0x30, algorithm.len() as u8];
        body.extend_from_slice(&algorithm);
        body.extend_from_slice(&[0x03, 0x02, 0x00, 0xff]);
        let mut der = vec![0x30, 0x81, body.len() as u8];
        der.extend_from_slice(&body);
        der
    }

    #[test]
    fn md5_and_sha1_signatures_bind_with_sha256() {
        let pkcs1 = |n: u8| vec![0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, n];
        for (oid, expect) in [
            (pkcs1(4), Some(EndPointHash::Sha256)),
            (pkcs1(5), Some(EndPointHash::Sha256)),
            (pkcs1(11), Some(EndPointHash::Sha256)),
            (pkcs1(12), Some(EndPointHash::Sha384)),
            (pkcs1(13), Some(EndPointHash::Sha512)),
            (pkcs1(14), Some(EndPointHash::Sha224)),
            (pkcs1(10), None), // RSASSA-PSS: the hash is in the parameters
            (
                vec![0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
                Some(EndPointHash::Sha256),
            ),
            (vec![0x2b, 0x65, 0x70], None), // Ed25519
        ] {
            let der = shaped(&oid);
            assert_eq!(signature_algorithm(&der), Some(&oid[..]), "{oid:02x?}");
            assert_eq!(end_point_hash(&oid), expect, "{oid:02x?}");
        }
        let sha1_rsa = shaped(&pkcs1(5));
        assert_eq!(
            server_end_point(&sha1_rsa),
            Some(sha2::Sha256::digest(&sha1_rsa).to_vec())
        );
    }

    #[test]
    fn malformed_der_gives_no_binding() {
        let good = shaped(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        for cut in 0..good.len() {
            assert_eq!(server_end_point(&good[..cut]), None, "cut at {cut}");
        }
        for bad in [
            &[0x30, 0x85, 1, 1, 1, 1, 1][..],
            &[0x30, 0x80],
            &[0x04, 0x00],
        ] {
            assert_eq!(server_end_point(bad), None);
        }
    }
}
