//! Who is connecting: the SSH user name names the target, the public key names the user.
//!
//! Invariants: only keys listed in `users[].ssh_keys` authenticate (compared by key data,
//! comments ignored); an unknown target, a target that is not of kind ssh and an unknown key
//! all give the same answer (`None`), so a client learns nothing about which targets exist.

use std::sync::Arc;

use russh::keys::PublicKey;

use crate::config::{Config, Target, TargetKind, User};

/// The user owning `key` and the ssh target named `target`, if both exist.
pub(super) fn identify(
    config: &Config,
    target: &str,
    key: &PublicKey,
) -> Option<(Arc<User>, Arc<Target>)> {
    let t = config
        .target(target)
        .filter(|t| t.kind == TargetKind::Ssh)?;
    let user = config.users.values().find(|u| {
        u.ssh_keys
            .iter()
            .any(|k| PublicKey::from_openssh(k).is_ok_and(|k| k.key_data() == key.key_data()))
    })?;
    Some((user.clone(), t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    use std::path::Path;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn config(dir: &Path, alice: &str) -> Config {
        let key_file = dir.join("k");
        let private = key(7).to_openssh(LineEnding::LF).unwrap();
        std::fs::write(&key_file, private.as_bytes()).unwrap();
        let text = format!(
            r#"
[server]
api_listen = "127.0.0.1:1"
data_dir = "/tmp"
[[users]]
name = "alice"
ssh_keys = ["{alice} alice@laptop"]
[[targets]]
name = "web-1"
kind = "ssh"
address = "127.0.0.1:22"
user = "deploy"
key_file = "{}"
host_key = "{alice}"
[[targets]]
name = "db"
kind = "postgres"
address = "127.0.0.1:5432"
database = "x"
user = "x"
"#,
            key_file.display()
        );
        Config::parse(&text, dir).unwrap()
    }

    #[test]
    fn key_and_target_must_both_match() {
        let dir = std::env::temp_dir().join(format!("jitgate-sshauth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let alice = key(1).public_key().clone();
        let other = key(2).public_key().clone();
        let c = config(&dir, &alice.to_openssh().unwrap());
        let (u, t) = identify(&c, "web-1", &alice).unwrap();
        assert_eq!((u.name.as_str(), t.name.as_str()), ("alice", "web-1"));
        assert!(identify(&c, "web-1", &other).is_none());
        assert!(identify(&c, "nope", &alice).is_none());
        assert!(
            identify(&c, "db", &alice).is_none(),
            "postgres targets are not ssh targets"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
