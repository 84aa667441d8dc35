//! Issue 13's hostile exec commands through jitgate against the real target sshd (policy:
//! reads pass, the rest needs an SRE): each is held, nobody approves, the hold expires, and
//! the TARGET has no file. Each payload is first run straight against the target sshd to
//! prove it really writes there, so the check through jitgate can fail.

mod support;

use std::path::Path;
use std::time::Duration;

use support::proc::{output_text, run_timeout};
use support::sshd::SshEnv;

const T: Duration = Duration::from_secs(120);

/// Commands that write `{path}` on the target, each looking like a read to a classifier
/// that trusts quoting or full option names.
const PAYLOADS: &[&str] = &[
    "[[ 'a[$(touch {path})]' -eq 0 ]]",
    "test -v 'a[$(touch {path})]'",
    "[ -v 'a[$(touch {path})]' ]",
    "LC_A='a[$(touch {path})]'; echo $((LC_A))",
    "TERM='$(touch {path})'; echo \"${TERM@P}\"",
    "sort --o={path} /etc/hostname",
    "sort --outp={path} /etc/hostname",
    "zstdcat -f -o {path} /etc/hostname",
];

fn path_for(index: usize) -> String {
    format!("/tmp/jitgate-issue13-{}-{index}", std::process::id())
}

#[test]
fn hostile_commands_are_held_and_write_nothing_on_the_target() {
    let env = SshEnv::builder().hold_timeout("2s").start();
    for (index, payload) in PAYLOADS.iter().enumerate() {
        let path = path_for(index);
        let command = payload.replace("{path}", &path);
        let _ = std::fs::remove_file(&path);

        // Straight to the target: the payload writes.
        let out = run_timeout(env.ssh_direct().arg(&command), None, T);
        assert!(
            Path::new(&path).exists(),
            "{command:?} did not write on the target when run directly: {}",
            output_text(&out)
        );
        std::fs::remove_file(&path).expect("remove the direct run's file");

        // Through jitgate: held, not approved, expired; nothing written.
        let out = run_timeout(env.ssh().arg(&command), None, T);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("held for approval"),
            "{command:?} was not held: {}\n{}",
            output_text(&out),
            env.logs()
        );
        assert!(!out.status.success(), "{command:?}: {}", output_text(&out));
        assert!(
            !Path::new(&path).exists(),
            "{command:?} wrote {path} on the target through jitgate"
        );
    }
    // Benign reads still pass at once.
    for read in ["sort -n /etc/hostname", "df -h", "ps aux", "uptime"] {
        let out = run_timeout(env.ssh().arg(read), None, T);
        assert!(
            out.status.success(),
            "{read:?}: {}\n{}",
            output_text(&out),
            env.logs()
        );
    }
}
