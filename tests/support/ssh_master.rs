//! An OpenSSH ControlMaster connection to jitgate, for tests of several channels on one SSH
//! connection (one jitgate session). Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::TempDir;
use super::proc::wait_until;
use super::sshd::{SshEnv, TARGET, ssh_client_opts};

/// An OpenSSH ControlMaster connection to jitgate: every [`Master::client`] opens one more
/// channel on the same SSH connection (one jitgate session).
pub struct Master {
    child: Child,
    socket: PathBuf,
    port: u16,
    _dir: TempDir,
}

impl Master {
    pub fn start(env: &SshEnv) -> Master {
        let dir = TempDir::new("jg-mux");
        let socket = dir.join("mux");
        let child = Command::new("ssh")
            .arg("-p")
            .arg(env.jg.ssh_port().to_string())
            .args(ssh_client_opts(&env.keys.alice))
            .args(["-o", "ControlMaster=yes", "-o"])
            .arg(format!("ControlPath={}", socket.display()))
            .arg("-N")
            .arg(format!("{TARGET}@127.0.0.1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the ssh master");
        wait_until("the ssh master's socket", Duration::from_secs(120), || {
            socket.exists().then_some(())
        });
        Master {
            child,
            socket,
            port: env.jg.ssh_port(),
            _dir: dir,
        }
    }

    /// `ssh` through the master only: the key is a file that does not exist, so a client
    /// that fell back to a connection of its own could not log in.
    pub fn client(&self) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-p").arg(self.port.to_string());
        c.args(ssh_client_opts(Path::new("/nonexistent/jitgate-test-key")));
        c.args(["-o", "ControlMaster=no", "-o"])
            .arg(format!("ControlPath={}", self.socket.display()));
        c.arg(format!("{TARGET}@127.0.0.1"));
        c
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
