//! `systemd/jitgate.service`: systemd's own analysers read it as a valid, tightly sandboxed
//! `Type=notify` service. No running systemd is needed (`--offline=true`).
//!
//! `systemd-analyze` comes with Debian's `systemd` package, which tests/run.sh installs. Where it
//! is missing the tests say so loudly and pass, except under CI (`CI` set), where a missing tool
//! fails like every other one.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::TempDir;
use support::proc::{output_text, run_timeout};

const ANALYZE: &str = "/usr/bin/systemd-analyze";
/// The exposure score the unit must stay at or under (0 = fully sandboxed, 10 = none).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/jitgate.service")
}

/// False (after a loud message) when systemd-analyze is absent outside CI.
fn have_analyze() -> bool {
    if Path::new(ANALYZE).exists() {
        return true;
    }
    let msg = format!(
        "{ANALYZE} is missing (Debian package `systemd`; tests/run.sh installs it): \
         the systemd unit was NOT checked"
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! SKIPPED: {msg}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    false
}

fn analyze(args: &[&str]) -> std::process::Output {
    // SYSTEMD_COLORS=0 and a pipe keep the table plain.
    run_timeout(
        Command::new(ANALYZE)
            .args(args)
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", ""),
        None,
        Duration::from_secs(60),
    )
}

/// The score from the last line: `→ Overall exposure level for jitgate.service: 1.1 OK 🙂`.
fn exposure(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let after = line.rsplit_once(": ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_score_is_at_most_two() {
    if !have_analyze() {
        return;
    }
    let unit = unit_path();
    let out = analyze(&[
        "security",
        "--offline=true",
        "--no-pager",
        unit.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score = exposure(&stdout)
        .unwrap_or_else(|| panic!("no exposure score in the output\n{}", output_text(&out)));
    let open: Vec<&str> = stdout.lines().filter(|l| l.starts_with('✗')).collect();
    eprintln!(
        "systemd-analyze security --offline=true systemd/jitgate.service: exposure {score}\n\
         still open:\n{}",
        open.join("\n")
    );
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}\n{}",
        output_text(&out)
    );
}

#[test]
fn unit_verifies_cleanly() {
    if !have_analyze() {
        return;
    }
    // verify insists that ExecStart's binary exists: point the unit at the one cargo built.
    let dir = TempDir::new("unit");
    let text = std::fs::read_to_string(unit_path()).expect("read the unit");
    let text = text.replace("/usr/local/bin/jitgate", env!("CARGO_BIN_EXE_jitgate"));
    let copy = dir.join("jitgate.service");
    std::fs::write(&copy, text).expect("write the unit copy");
    let out = analyze(&["verify", "--no-pager", copy.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify complained (an unknown or misspelt key is only a warning, so \
         any output fails)\n{}",
        output_text(&out)
    );
}

#[test]
fn unit_runs_the_documented_commands() {
    let text = std::fs::read_to_string(unit_path()).expect("read the unit");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "ExecStart=/usr/local/bin/jitgate serve --config /etc/jitgate/jitgate.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=jitgate",
        "ConfigurationDirectory=jitgate",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(lines.contains(&want), "the unit lacks `{want}`");
    }
}
