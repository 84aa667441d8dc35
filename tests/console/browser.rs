//! The Selenium driver (tests/console/drive.py) from a Rust test: a headless Chromium that
//! takes one JSON command per line and answers each; a failed step panics with the driver's
//! error and the tail of its log. Without `JITGATE_CONSOLE_PYTHON` (a Python with selenium,
//! made by tests/run.sh), chromium or chromedriver, starting it panics: it never skips.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::TempDir;
use crate::support::proc::require_tool;

/// The interpreter with selenium, from tests/run.sh.
const PYTHON_VAR: &str = "JITGATE_CONSOLE_PYTHON";

/// tests/console/drive.py in a headless Chromium, driven one command at a time.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    log: TempDir,
}

impl Browser {
    pub fn start() -> Browser {
        let python = std::env::var(PYTHON_VAR).unwrap_or_else(|_| {
            panic!(
                "{PYTHON_VAR} is not set: it names a Python with selenium installed \
                 (tests/run.sh creates one: python3 -m venv DIR && DIR/bin/pip install selenium)"
            )
        });
        require_tool(&python);
        require_tool("/usr/bin/chromium");
        require_tool("/usr/bin/chromedriver");
        let log = TempDir::new("console-driver");
        let stderr = std::fs::File::create(log.join("stderr")).expect("driver log");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console/drive.py");
        let mut child = Command::new(&python)
            .arg(script)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {python}: {e}"));
        let stdin = child.stdin.take().expect("driver stdin");
        let stdout = child.stdout.take().expect("driver stdout");
        let (tx, answers) = sync_channel(4);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            stdin,
            answers,
            log,
        }
    }

    pub fn driver_log(&self) -> String {
        crate::support::proc::file_tail(&self.log.join("stderr"), 30)
    }

    /// One command; panics with the driver's error (and its log) unless it succeeded.
    pub fn run(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to the driver");
        let line = self
            .answers
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{command}: no answer ({e})\n{}", self.driver_log()));
        let answer: Value = serde_json::from_str(&line).expect("the driver answers JSON");
        assert_eq!(
            answer["ok"],
            true,
            "{command}: {}\n{}",
            answer["error"],
            self.driver_log()
        );
        answer
    }

    pub fn open(&mut self, url: &str, width: u32) {
        self.run(json!({"op": "open", "url": url, "width": width, "height": 900}));
    }

    pub fn resize(&mut self, width: u32) {
        self.run(json!({"op": "open", "width": width, "height": 900}));
    }

    pub fn sign_in(&mut self, token: &str) {
        self.run(json!({"op": "sign_in", "token": token}));
    }

    pub fn wait(&mut self, css: &str) -> String {
        self.run(json!({"op": "wait", "css": css}))["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn wait_text(&mut self, css: &str, text: &str) -> String {
        self.run(json!({"op": "wait", "css": css, "text": text}))["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&mut self, css: &str) {
        self.run(json!({"op": "click", "css": css}));
    }

    pub fn type_into(&mut self, css: &str, text: &str) {
        self.run(json!({"op": "type", "css": css, "text": text}));
    }

    /// The attribute `attr` of every element matching `css`.
    pub fn attrs(&mut self, css: &str, attr: &str) -> Vec<String> {
        let v = self.run(json!({"op": "texts", "css": css, "attr": attr}));
        v["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Asserts the page logged no script error and no Content-Security-Policy refusal.
    pub fn assert_no_page_errors(&mut self) {
        let errors = self.run(json!({"op": "page_errors"}))["errors"].clone();
        assert_eq!(errors, json!([]), "the browser console shows errors");
    }

    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target dir")
            .join("console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(name);
        self.run(json!({"op": "screenshot", "path": path}));
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{}: {size} bytes", path.display());
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        if crate::support::proc::wait_child(&mut self.child, Duration::from_secs(20)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
