//! A store whose disk fills up: reads carry on, a sensitive statement is refused with a clear
//! error and does not run, and the proxy stays up.

#[path = "support/api.rs"]
mod api;
mod support;

use std::process::Command;
use std::time::Duration;

use api::{Fixture, POLL};
use support::{output_text, run_timeout};

/// A tmpfs of `mib` MiB mounted on a new directory (unmounted on drop).
struct SmallDisk {
    _dir: support::TempDir,
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn new(mib: u32) -> SmallDisk {
        let d = support::TempDir::new("audit-disk");
        let m = d.path().join("mnt");
        std::fs::create_dir_all(&m).unwrap();
        let o = run_timeout(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(&m),
            None,
            Duration::from_secs(30),
        );
        assert!(
            o.status.success(),
            "mounting a small tmpfs (the test needs root and mount): {}",
            output_text(&o)
        );
        SmallDisk { _dir: d, path: m }
    }

    /// Fill the disk to the last byte.
    fn fill(&self) {
        let _ = run_timeout(
            Command::new("dd")
                .args(["if=/dev/zero", "bs=1M"])
                .arg(format!("of={}", self.path.join("filler").display())),
            None,
            Duration::from_secs(60),
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_sensitive_statements_with_a_clear_error() {
    let disk = SmallDisk::new(48);
    let fx = Fixture::with("60s", 5, |b| b.data_dir(&disk.path));
    let s = fx.alice_session().await;
    assert_eq!(s.value("SELECT v FROM t WHERE id = 1").await, "0");
    disk.fill();
    // Reads are routine: the writer fails on its next commit, and reads carry on
    // (`on_failure = "refuse-sensitive"`, the default).
    let deadline = std::time::Instant::now() + POLL;
    while !fx.env.jg.log().contains("audit store failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the audit store never noticed the full disk"
        );
        assert_eq!(s.value("SELECT v FROM t WHERE id = 1").await, "0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.value("SELECT v FROM t WHERE id = 1").await, "0");
    let r = s.client.simple_query("INSERT INTO log VALUES (1)").await;
    let (code, msg) = api::failure(r);
    assert_eq!(code, "42501");
    assert!(msg.contains("audit trail cannot record it"), "{msg}");
    assert_eq!(fx.sql("SELECT count(*) FROM log;"), "0");
    // The proxy is still up and says why.
    assert!(fx.env.jg.is_running());
}
