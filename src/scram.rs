//! SCRAM-SHA-256 (RFC 5802 / RFC 7677), server side, as PostgreSQL speaks it.
//!
//! The proxy stores only verifiers (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, the
//! format of `pg_authid.rolpassword`), never passwords. An unknown user runs the same exchange
//! against a mock verifier derived from a per-process secret, so a wrong password and an unknown
//! user are indistinguishable on the wire. Channel binding (`-PLUS`) is not offered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub const MECHANISM: &str = "SCRAM-SHA-256";

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
    #[error("channel binding is not supported")]
    ChannelBinding,
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
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Handle client-first-message; returns the state and server-first-message.
    pub fn start(
        verifier: Verifier,
        client_first: &[u8],
    ) -> Result<(Exchange, String), ScramError> {
        let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = msg.splitn(3, ',');
        let cbind = parts.next().ok_or(ScramError::Malformed)?;
        let authzid = parts.next().ok_or(ScramError::Malformed)?;
        let bare = parts.next().ok_or(ScramError::Malformed)?;
        match cbind {
            // "y": the client supports binding but thinks we don't — true, we never offer -PLUS.
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        }
        if !authzid.is_empty() {
            return Err(ScramError::Malformed);
        }
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
                gs2_header: format!("{cbind},{authzid},"),
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
        let cbind = B64
            .decode(cbind.ok_or(ScramError::Malformed)?)
            .map_err(|_| ScramError::Malformed)?;
        if cbind != self.gs2_header.as_bytes() {
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
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn run(verifier: &Verifier, password: &str) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let (ex, server_first) = Exchange::start(verifier.clone(), client.message())?;
        client
            .update(server_first.as_bytes())
            .map_err(|_| ScramError::Malformed)?;
        let server_final = ex.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|_| ScramError::Malformed)
    }

    #[test]
    fn round_trip_with_the_rust_postgres_client() {
        let v = Verifier::parse(&hash_password("correct horse")).unwrap();
        assert_eq!(run(&v, "correct horse"), Ok(()));
        assert_eq!(run(&v, "wrong"), Err(ScramError::WrongPassword));
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
        for bad in [
            &b""[..],
            b"n,,",
            b"\xff\xfe",
            b"p=tls-server-end-point,,n=,r=abc",
            b"n,,n=,",
        ] {
            assert!(Exchange::start(v.clone(), bad).is_err(), "{bad:?}");
        }
        let (ex, _) = Exchange::start(v, b"n,,n=,r=abc").unwrap();
        assert!(ex.finish(b"c=biws,r=abc,p=AAAA").is_err());
        assert!(Verifier::parse("md5abc").is_err());
        assert!(Verifier::parse("SCRAM-SHA-256$0:AAAA$AAAA:AAAA").is_err());
    }
}
