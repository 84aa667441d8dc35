//! The proxy's own SSH host key: read from `server.ssh_host_key`, or generated (ed25519) and
//! written there in OpenSSH format with mode 0600 when the file does not exist.
//!
//! Invariant: an existing file is never overwritten; a file that exists but cannot be read
//! as a private key is an error, not a reason to make a new key.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("cannot read the SSH host key {0}: {1}")]
    Read(String, String),
    #[error("cannot write the SSH host key {0}: {1}")]
    Write(String, String),
}

pub fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let shown = path.display().to_string();
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|e| HostKeyError::Read(shown, e.to_string()));
    }
    let seed: [u8; 32] = rand::random();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| HostKeyError::Write(shown.clone(), e.to_string()))?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| HostKeyError::Write(shown.clone(), e.to_string()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HostKeyError::Write(shown.clone(), e.to_string()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| HostKeyError::Write(shown.clone(), e.to_string()))?;
    tracing::info!(path = %shown, "generated a new ed25519 SSH host key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_then_reuses() {
        let dir = std::env::temp_dir().join(format!("jitgate-hostkey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub").join("key");
        let a = load_or_create_host_key(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create_host_key(&path).unwrap();
        assert_eq!(a.public_key().key_data(), b.public_key().key_data());
        std::fs::write(&path, "garbage").unwrap();
        assert!(load_or_create_host_key(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
