//! Third-party PostgreSQL drivers for tests/pg_drivers.rs: asyncpg and psycopg 3 from PyPI
//! (pip), node-postgres from npm, and the commands that run the client scripts in tests/drivers/.
//!
//! Invariants:
//! - the packages are installed once per test binary run into `<target>/tmp/driver-deps/`
//!   (`CARGO_TARGET_TMPDIR`) and reused by later runs while the marker file there names exactly
//!   the pinned versions below; an install goes to a staging directory that is renamed into
//!   place only once it is complete, so a half-installed directory is never used;
//! - a missing python3, pip, node or npm, or a failed install, panics with what to install: the
//!   driver tests never skip;
//! - the scripts run with a clean environment for libpq and Python: every inherited `PG*`
//!   variable is removed, bytecode is not written into the source tree, and user site packages
//!   are ignored, so only the pinned packages are imported.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::proc::{output_text, require_tool, run_timeout};

/// The pinned Python packages (`pip install` arguments).
pub const PYTHON_PACKAGES: &[&str] = &["asyncpg==0.32.0", "psycopg[binary]==3.3.9"];
/// The pinned npm packages (`npm install` arguments).
pub const NODE_PACKAGES: &[&str] = &["pg@8.23.1"];

/// A registry on a slow day; an install that takes longer fails the test with its output.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Where one PostgreSQL server (jitgate or PostgreSQL itself) is reached, and as whom.
#[derive(Clone, Debug)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

/// A client script in tests/drivers/ and the interpreter it runs with.
#[derive(Clone, Copy, Debug)]
pub enum Driver {
    Asyncpg,
    Psycopg,
    NodePg,
}

impl Driver {
    /// The script's file name in tests/drivers/.
    pub fn script(self) -> &'static str {
        match self {
            Driver::Asyncpg => "asyncpg_client.py",
            Driver::Psycopg => "psycopg_client.py",
            Driver::NodePg => "node_pg_client.js",
        }
    }

    /// The script with its packages on the interpreter's path and `connection` in the standard
    /// `PG*` variables; add the steps as arguments.
    pub fn command(self, connection: &Connection) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/drivers")
            .join(self.script());
        let mut cmd = match self {
            Driver::Asyncpg | Driver::Psycopg => {
                let mut cmd = Command::new("python3");
                cmd.env("PYTHONPATH", python_packages())
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env("PYTHONNOUSERSITE", "1");
                cmd
            }
            Driver::NodePg => {
                let mut cmd = Command::new("node");
                cmd.env("NODE_PATH", node_packages().join("node_modules"));
                cmd
            }
        };
        cmd.arg(script);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PGHOST", &connection.host)
            .env("PGPORT", connection.port.to_string())
            .env("PGUSER", &connection.user)
            .env("PGPASSWORD", &connection.password)
            .env("PGDATABASE", &connection.database);
        cmd
    }
}

/// The directory holding asyncpg and psycopg (for `PYTHONPATH`), installed on first use.
pub fn python_packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool("python3");
        let pip = run_timeout(
            Command::new("python3").args(["-m", "pip", "--version"]),
            None,
            Duration::from_secs(60),
        );
        assert!(
            pip.status.success(),
            "pip is missing for python3 (install python3-pip): the driver tests need it to \
             install {PYTHON_PACKAGES:?}\n{}",
            output_text(&pip)
        );
        installed("python", PYTHON_PACKAGES, |staging| {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "pip", "install", "--quiet", "--no-input"])
                .args(["--disable-pip-version-check", "--root-user-action=ignore"])
                .arg("--target")
                .arg(staging)
                .args(PYTHON_PACKAGES);
            cmd
        })
    })
}

/// The directory whose `node_modules` holds `pg` (for `NODE_PATH`), installed on first use.
pub fn node_packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool("node");
        require_tool("npm");
        installed("node", NODE_PACKAGES, |staging| {
            let mut cmd = Command::new("npm");
            cmd.args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .arg("--prefix")
                .arg(staging)
                .args(NODE_PACKAGES);
            cmd
        })
    })
}

/// `<target>/tmp/driver-deps/<kind>`, installed with `install(staging_dir)` unless its marker
/// already names exactly `packages`.
fn installed(kind: &str, packages: &[&str], install: impl Fn(&Path) -> Command) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("driver-deps");
    let dir = root.join(kind);
    let wanted = packages.join("\n");
    let is_complete = |dir: &Path| {
        std::fs::read_to_string(dir.join("installed-packages")).is_ok_and(|m| m == wanted)
    };
    if is_complete(&dir) {
        return dir;
    }
    let staging = root.join(format!("{kind}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", staging.display()));
    let out = run_timeout(&mut install(&staging), None, INSTALL_TIMEOUT);
    assert!(
        out.status.success(),
        "installing {packages:?} into {} failed (the driver tests need the registry)\n{}",
        staging.display(),
        output_text(&out)
    );
    std::fs::write(staging.join("installed-packages"), &wanted)
        .unwrap_or_else(|e| panic!("write the marker in {}: {e}", staging.display()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::rename(&staging, &dir) {
        // Another test binary may have put its own complete install there meanwhile.
        let _ = std::fs::remove_dir_all(&staging);
        assert!(
            is_complete(&dir),
            "move {} to {}: {e}",
            staging.display(),
            dir.display()
        );
    }
    dir
}
