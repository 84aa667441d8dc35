//! SCRAM-SHA-256 (RFC 5802 / RFC 7677), server side, as PostgreSQL speaks it.
//!
//! The proxy stores only verifiers (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, the
//! format of `pg_authid.rolpassword`), never passwords. An unknown user runs the same exchange
//! against a mock verifier derived from a per-process secret, so a wrong password and an unknown
//! user are indistinguishable on the wire.
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`) follows RFC 5802's gs2 rules
//! as PostgreSQL applies them: PLUS is offered, first, exactly when the connection has binding
//! data ([`ChannelBinding::TlsServerEndPoint`], i.e. the client came over TLS); `p=` is accepted
//! only with PLUS and PLUS only with `p=tls-server-end-point`; `y` ("I could bind, I think you
//! cannot") while PLUS was offered is a downgrade and fails; `n` with plain SCRAM is fine; the
//! client-final `c=` must be exactly base64(gs2 header + binding data). Every failure is an
//! `Err` the caller reports as a wrong password, so nothing tells a client which check failed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const MECHANISM: &str = "SCRAM-SHA-256";
pub const MECHANISM_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The one channel-binding type PostgreSQL (and so jitgate) supports.
pub const BINDING_TYPE: &str = "tls-server-end-point";

/// What the server can bind an exchange on this connection to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Not over TLS (or a certificate whose signature algorithm defines no binding).
    Unavailable,
    /// Over TLS: the `tls-server-end-point` data of the certificate the handshake served.
    TlsServerEndPoint(Vec<u8>),
}

impl ChannelBinding {
    /// The mechanisms to offer, in PostgreSQL's order (PLUS first).
    pub fn mechanisms(&self) -> &'static [&'static str] {
        match self {
            ChannelBinding::Unavailable => &[MECHANISM],
            ChannelBinding::TlsServerEndPoint(_) => &[MECHANISM_PLUS, MECHANISM],
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("not a SCRAM-SHA-256 verifier")]
    BadVerifier,
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("unknown SASL mechanism")]
    Mechanism,
    #[error("channel binding does not match the mechanism and the connection")]
    ChannelBinding,
    #[error("the client can bind to the channel but believes the server cannot (downgrade)")]
    Downgrade,
    #[error("nonce mismatch")]
    Nonce,
    #[error("wrong password")]
    WrongPassword,
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // A key of any length is valid for HMAC; new_from_slice cannot fail here.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn key32(b64: &str) -> Result<[u8; 32], ScramError> {
    let v = B64.decode(b64).map_err(|_| ScramError::BadVerifier)?;
    v.try_into().map_err(|_| ScramError::BadVerifier)
}

impl Verifier {
    /// Parse `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(s: &str) -> Result<Verifier, ScramError> {
        let rest = s
            .trim()
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::BadVerifier)?;
        let (iter_salt, keys) = rest.split_once('$').ok_or(ScramError::BadVerifier)?;
        let (iter, salt) = iter_salt.split_once(':').ok_or(ScramError::BadVerifier)?;
        let (stored, server) = keys.split_once(':').ok_or(ScramError::BadVerifier)?;
        let iterations: u32 = iter.parse().map_err(|_| ScramError::BadVerifier)?;
        if iterations == 0 {
            return Err(ScramError::BadVerifier);
        }
        Ok(Verifier {
            iterations,
            salt: B64.decode(salt).map_err(|_| ScramError::BadVerifier)?,
            stored_key: key32(stored)?,
            server_key: key32(server)?,
        })
    }

    /// A verifier no password matches, with a salt that is stable per user name (as
    /// PostgreSQL's `scram_mock_salt`), so probing cannot tell unknown users from known ones.
    pub fn mock(user: &str, process_secret: &[u8; 32]) -> Verifier {
        let salt = hmac(process_secret, user.as_bytes())[..16].to_vec();
        Verifier {
            iterations: 4096,
            salt,
            stored_key: hmac(process_secret, b"stored"),
            server_key: hmac(process_secret, b"server"),
        }
    }
}

/// Make a verifier for `password` (what `jitgate hash-password` prints).
pub fn hash_password(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The server's state between the first and the final client message.
pub struct Exchange {
    verifier: Verifier,
    /// What the client-final `c=` must be: base64(gs2 header + binding data).
    channel_binding: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Handle client-first-message for `mechanism` on a connection that can bind to
    /// `binding`; returns the state and server-first-message.
    pub fn start(
        verifier: Verifier,
        mechanism: &str,
        client_first: &[u8],
        binding: &ChannelBinding,
    ) -> Result<(Exchange, String), ScramError> {
        let plus = match mechanism {
            MECHANISM => false,
            MECHANISM_PLUS => true,
            _ => return Err(ScramError::Mechanism),
        };
        let binding_data = match binding {
            ChannelBinding::TlsServerEndPoint(data) => Some(data.as_slice()),
            ChannelBinding::Unavailable => None,
        };
        let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let cbind = parts.next().ok_or(ScramError::Malformed)?;
        let authzid = parts.next().ok_or(ScramError::Malformed)?;
        let bare = parts.next().ok_or(ScramError::Malformed)?;
        let bound = match (cbind, plus, binding_data) {
            ("n", false, _) => None,
            ("y", false, None) => None,
            ("y", false, Some(_)) => return Err(ScramError::Downgrade),
            (c, true, Some(data)) if c.strip_prefix("p=") == Some(BINDING_TYPE) => Some(data),
            ("n" | "y", true, _) => return Err(ScramError::ChannelBinding),
            (c, _, _) if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        };
        if !authzid.is_empty() {
            return Err(ScramError::Malformed);
        }
        let gs2_header = format!("{cbind},{authzid},");
        let mut channel_binding = gs2_header.into_bytes();
        channel_binding.extend_from_slice(bound.unwrap_or_default());
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", _)) => {} // PostgreSQL ignores the SCRAM user name
                Some(("r", v)) => client_nonce = Some(v),
                Some(("m", _)) => return Err(ScramError::Malformed),
                _ => {}
            }
        }
        let client_nonce = client_nonce.ok_or(ScramError::Malformed)?;
        if client_nonce.is_empty()
            || !client_nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(ScramError::Malformed);
        }
        let server_part: [u8; 18] = rand::random();
        let nonce = format!("{client_nonce}{}", B64.encode(server_part));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            Exchange {
                verifier,
                channel_binding: B64.encode(channel_binding),
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Handle client-final-message; on success returns server-final-message (`v=…`).
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof_b64) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut cbind = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => cbind = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => {}
            }
        }
        // Compared as text, as PostgreSQL does: one encoding is right.
        if cbind.ok_or(ScramError::Malformed)? != self.channel_binding {
            return Err(ScramError::ChannelBinding);
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Nonce);
        }
        let proof = B64.decode(proof_b64).map_err(|_| ScramError::Malformed)?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed);
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (i, k) in client_key.iter_mut().enumerate() {
            *k = proof[i] ^ client_signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !bool::from(stored.ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongPassword);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{self, ScramSha256};

    const CERT_HASH: &[u8] = &[7; 32];

    fn run_with(
        verifier: &Verifier,
        password: &str,
        mechanism: &str,
        client_binding: sasl::ChannelBinding,
        server_binding: &ChannelBinding,
    ) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), client_binding);
        let (ex, server_first) = Exchange::start(
            verifier.clone(),
            mechanism,
            client.message(),
            server_binding,
        )?;
        client
            .update(server_first.as_bytes())
            .map_err(|_| ScramError::Malformed)?;
        let server_final = ex.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|_| ScramError::Malformed)
    }

    fn run(verifier: &Verifier, password: &str) -> Result<(), ScramError> {
        run_with(
            verifier,
            password,
            MECHANISM,
            sasl::ChannelBinding::unsupported(),
            &ChannelBinding::Unavailable,
        )
    }

    #[test]
    fn round_trip_with_the_rust_postgres_client() {
        let v = Verifier::parse(&hash_password("correct horse")).unwrap();
        assert_eq!(run(&v, "correct horse"), Ok(()));
        assert_eq!(run(&v, "wrong"), Err(ScramError::WrongPassword));
    }

    #[test]
    fn channel_binding_follows_the_gs2_rules() {
        let v = Verifier::parse(&hash_password("pw")).unwrap();
        let tls = ChannelBinding::TlsServerEndPoint(CERT_HASH.to_vec());
        let plain = ChannelBinding::Unavailable;
        let bind = |hash: &[u8]| sasl::ChannelBinding::tls_server_end_point(hash.to_vec());
        let cases = [
            // PLUS with the certificate's hash: bound.
            (MECHANISM_PLUS, bind(CERT_HASH), &tls, Ok(())),
            // The hash of another certificate (a machine in the middle): refused.
            (
                MECHANISM_PLUS,
                bind(&[8; 32]),
                &tls,
                Err(ScramError::ChannelBinding),
            ),
            // Plain SCRAM over TLS with "n" is the client's choice; with "y" a downgrade.
            (MECHANISM, sasl::ChannelBinding::unsupported(), &tls, Ok(())),
            (
                MECHANISM,
                sasl::ChannelBinding::unrequested(),
                &tls,
                Err(ScramError::Downgrade),
            ),
            // Without TLS, "y" is right (nothing was offered) and PLUS is impossible.
            (
                MECHANISM,
                sasl::ChannelBinding::unrequested(),
                &plain,
                Ok(()),
            ),
            (
                MECHANISM_PLUS,
                bind(CERT_HASH),
                &plain,
                Err(ScramError::ChannelBinding),
            ),
            // "p=" needs PLUS, and PLUS needs "p=".
            (
                MECHANISM,
                bind(CERT_HASH),
                &tls,
                Err(ScramError::ChannelBinding),
            ),
            (
                MECHANISM_PLUS,
                sasl::ChannelBinding::unsupported(),
                &tls,
                Err(ScramError::ChannelBinding),
            ),
            (
                MECHANISM_PLUS,
                sasl::ChannelBinding::unrequested(),
                &tls,
                Err(ScramError::ChannelBinding),
            ),
            (
                "SCRAM-SHA-1",
                sasl::ChannelBinding::unsupported(),
                &tls,
                Err(ScramError::Mechanism),
            ),
        ];
        for (i, (mechanism, client, server, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                run_with(&v, "pw", mechanism, client, server),
                expected,
                "case {i}"
            );
        }
        assert_eq!(tls.mechanisms(), &[MECHANISM_PLUS, MECHANISM]);
        assert_eq!(plain.mechanisms(), &[MECHANISM]);
    }

    #[test]
    fn client_final_must_repeat_the_exact_binding() {
        let v = Verifier::parse(&hash_password("pw")).unwrap();
        let tls = ChannelBinding::TlsServerEndPoint(CERT_HASH.to_vec());
        let first = b"p=tls-server-end-point,,n=,r=abc";
        let (ex, _) = Exchange::start(v.clone(), MECHANISM_PLUS, first, &tls).unwrap();
        // "c=" of the gs2 header alone (no binding data), as a client that drops it would send.
        let header_only = B64.encode("p=tls-server-end-point,,");
        let final_msg = format!("c={header_only},r=abc,p=AAAA");
        assert_eq!(
            ex.finish(final_msg.as_bytes()),
            Err(ScramError::ChannelBinding)
        );
        for unknown in [&b"p=tls-unique,,n=,r=abc"[..], b"p=,,n=,r=abc"] {
            assert!(Exchange::start(v.clone(), MECHANISM_PLUS, unknown, &tls).is_err());
        }
        // "y" then "c=biws" ("n,,") in the final message: the flag must not change.
        let (ex, _) =
            Exchange::start(v, MECHANISM, b"y,,n=,r=abc", &ChannelBinding::Unavailable).unwrap();
        assert_eq!(
            ex.finish(b"c=biws,r=abc,p=AAAA"),
            Err(ScramError::ChannelBinding)
        );
    }

    #[test]
    fn mock_verifier_never_matches() {
        let v = Verifier::mock("nobody", &[7; 32]);
        assert_eq!(run(&v, ""), Err(ScramError::WrongPassword));
        assert_eq!(v, Verifier::mock("nobody", &[7; 32]));
    }

    #[test]
    fn rejects_garbage() {
        let v = Verifier::parse(&hash_password("x")).unwrap();
        let none = ChannelBinding::Unavailable;
        for bad in [
            &b""[..],
            b"n,,",
            b"\xff\xfe",
            b"p=tls-server-end-point,,n=,r=abc",
            b"n,,n=,",
            b"x,,n=,r=abc",
            b"n,a=bob,n=,r=abc",
        ] {
            assert!(
                Exchange::start(v.clone(), MECHANISM, bad, &none).is_err(),
                "{bad:?}"
            );
        }
        let (ex, _) = Exchange::start(v, MECHANISM, b"n,,n=,r=abc", &none).unwrap();
        assert!(ex.finish(b"c=biws,r=abc,p=AAAA").is_err());
        assert!(Verifier::parse("md5abc").is_err());
        assert!(Verifier::parse("SCRAM-SHA-256$0:AAAA$AAAA:AAAA").is_err());
    }
}
