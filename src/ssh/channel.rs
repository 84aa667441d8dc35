//! One session channel: gather its setup (pty, env), take its start request (exec, shell,
//! subsystem) to the Gate, then relay it to a channel on the target.
//!
//! Invariants:
//! - The target channel is opened only with a Permit; a refused start gets a message on
//!   stderr, exit status 126, EOF and close, and nothing of it reaches the target.
//! - Input sent before the decision is kept (up to [`HELD_INPUT_CAP`], then the inbox's
//!   window throttling pauses the client) and delivered first once allowed; a held channel
//!   still sees its close at once however much input is queued ([`super::hold`]).
//! - The relay keeps SSH semantics: stdout, stderr (extended data 1), EOF each way,
//!   exit-status and exit-signal exactly as the target sent them, close after both; only
//!   the target's EOF waits for its exit status (or close), so that a client that closes
//!   on EOF still gets the status. Each direction writes only as fast as the receiving
//!   side's window opens.
//! - Closing the user's channel (or the connection) while held withdraws the request.
//! - Recorded channels (all but file transfers: sftp, scp, rsync, whose commands and sftp
//!   operations are audited instead) start their recording before the target starts the
//!   command, and forward only what was recorded ([`super::record`]). When the session's
//!   recording stops (limit reached, store failed), the channel stops forwarding at once,
//!   closes the target's channel, tells the user on stderr why, ends with
//!   [`STOPPED_STATUS`], and the session is ended ([`Conn::recording_stopped`]); a session
//!   whose recording stopped starts no channel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use russh::server::Msg;
use russh::{ChannelId, ChannelMsg, ChannelWriteHalf, Pty};

use super::Conn;
use super::hold;
use super::inbox::Inbox;
use super::record::{ChannelRecorder, Stop};
use super::trail;
use crate::policy::Class;
use crate::policy::shell::classify_shell;
use relay::{relay, stopped};

mod relay;

/// Environment variables passed to the target; everything else is refused.
pub(super) fn env_allowed(name: &str) -> bool {
    name == "TERM" || name == "LANG" || name.starts_with("LC_")
}

/// Input kept while a start request waits for its decision.
pub const HELD_INPUT_CAP: usize = 1 << 20;
/// Exit status for a command the proxy refused (as a shell does for "cannot execute").
const REFUSED_STATUS: u32 = 126;
/// Exit status when the target could not be reached (as ssh itself).
const UNREACHABLE_STATUS: u32 = 255;
/// Exit status of a channel ended because its session can no longer be recorded.
pub const STOPPED_STATUS: u32 = 255;
/// After the user closed the channel, how long the target may take to close its side.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

struct PtyReq {
    term: String,
    cols: u32,
    rows: u32,
    pix_w: u32,
    pix_h: u32,
    modes: Vec<(Pty, u32)>,
}

enum Start {
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// What the client asked for before (and while) its start request was decided.
#[derive(Default)]
struct Setup {
    pty: Option<PtyReq>,
    env: Vec<(String, String)>,
    early: Vec<Bytes>,
    early_len: usize,
    eof: bool,
    closed: bool,
}

impl Setup {
    fn full(&self) -> bool {
        self.early_len >= HELD_INPUT_CAP
    }

    /// Take in one message; returns a start request when it is one.
    fn absorb(&mut self, m: Option<ChannelMsg>) -> Option<Start> {
        match m {
            None | Some(ChannelMsg::Close) => self.closed = true,
            Some(ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            }) => {
                self.pty = Some(PtyReq {
                    term,
                    cols: col_width,
                    rows: row_height,
                    pix_w: pix_width,
                    pix_h: pix_height,
                    modes: terminal_modes,
                })
            }
            Some(ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            }) => {
                if let Some(p) = &mut self.pty {
                    (p.cols, p.rows, p.pix_w, p.pix_h) =
                        (col_width, row_height, pix_width, pix_height);
                }
            }
            Some(ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            }) => {
                if env_allowed(&variable_name) && self.env.len() < 64 {
                    self.env.push((variable_name, variable_value));
                }
            }
            Some(ChannelMsg::Data { data }) => {
                self.early_len += data.len();
                self.early.push(data);
            }
            Some(ChannelMsg::Eof) => self.eof = true,
            Some(ChannelMsg::Exec { command, .. }) => return Some(Start::Exec(command)),
            Some(ChannelMsg::RequestShell { .. }) => return Some(Start::Shell),
            Some(ChannelMsg::RequestSubsystem { name, .. }) => return Some(Start::Subsystem(name)),
            Some(_) => {}
        }
        None
    }
}

/// The channel's life: setup, decision, relay.
pub(super) async fn run(
    conn: Arc<Conn>,
    id: russh::ChannelId,
    rx: Arc<Inbox>,
    tx: ChannelWriteHalf<Msg>,
) {
    let mut setup = Setup::default();
    let start = loop {
        if setup.full() {
            // Nobody sends a megabyte before asking for a command; stop listening.
            let _ = tx.close().await;
            return;
        }
        let m = rx.recv().await;
        if let Some(s) = setup.absorb(m) {
            break s;
        }
        if setup.closed {
            return;
        }
    };

    let (statement, classification) = match &start {
        Start::Exec(cmd) => match std::str::from_utf8(cmd) {
            Ok(s) => (s.to_string(), classify_shell(s)),
            Err(_) => (
                String::from_utf8_lossy(cmd).into_owned(),
                crate::policy::Classification::bare(Class::Unknown, "command is not UTF-8"),
            ),
        },
        Start::Shell => (
            "<interactive shell>".to_string(),
            trail::shell_classification(),
        ),
        Start::Subsystem(name) => (
            format!("subsystem {name}"),
            trail::subsystem_classification(name),
        ),
    };
    let pty = setup.pty.is_some();
    let eol = if pty { "\r\n" } else { "\n" };
    if let Some(stop) = conn.recorder.stopped() {
        refuse(
            &tx,
            &format!("{}{eol}", stop.user_message()),
            STOPPED_STATUS,
        )
        .await;
        return;
    }

    let sftp = matches!(&start, Start::Subsystem(name) if name == "sftp");
    let pending = if sftp {
        trail::decide_opening(&conn.app, &conn.ctx, &statement, &classification)
    } else {
        trail::decide(&conn.app, &conn.ctx, &statement, &classification)
    };
    // While held, keep reading: input is kept up to the cap (then the inbox's window
    // throttling pauses the client), and a close is seen at once whatever is queued.
    let closed = async {
        loop {
            if setup.full() {
                rx.closed().await;
                return;
            }
            let _ = setup.absorb(rx.recv().await);
            if setup.closed {
                return;
            }
        }
    };
    let Some(outcome) = hold::outcome(&conn, pending, Some((&tx, eol)), closed).await else {
        // Dropping the wait withdrew the request.
        return;
    };
    let permit = match outcome {
        Ok(p) => p,
        Err(refusal) => {
            tracing::info!(channel = %id, statement = %crate::escape::terminal(&statement), "refused: {}", refusal.message);
            refuse(&tx, &format!("{}{eol}", refusal.message), REFUSED_STATUS).await;
            return;
        }
    };
    tracing::info!(
        channel = %id,
        class = %permit.class,
        rule = permit.rule.as_deref().unwrap_or(""),
        statement = %crate::escape::terminal(&statement),
        "allowed"
    );

    let up = match conn.upstream().await {
        Ok(u) => u,
        Err(e) => {
            refuse(
                &tx,
                &format!("{}{eol}", e.user_message()),
                UNREACHABLE_STATUS,
            )
            .await;
            // The channel carries the message and exit status; the client then ends the
            // connection itself. Disconnecting here could overtake the message in flight.
            conn.refused(&e.audit_reason());
            return;
        }
    };
    let target = match up.handle.channel_open_session().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("target refused a session channel: {e}");
            let msg = format!("jitgate: the target refused the channel{eol}");
            refuse(&tx, &msg, UNREACHABLE_STATUS).await;
            return;
        }
    };
    if let Some(p) = &setup.pty {
        let _ = target
            .request_pty(false, &p.term, p.cols, p.rows, p.pix_w, p.pix_h, &p.modes)
            .await;
    }
    for (k, v) in std::mem::take(&mut setup.env) {
        let _ = target.set_env(false, k, v).await;
    }
    // The recording starts before the command does: a channel that cannot be recorded
    // never runs. File transfers (sftp, scp, rsync) are not terminal sessions: their
    // commands and, for sftp, each operation are audited instead.
    let recorder = if classification.class == Class::FileTransfer {
        None
    } else {
        match start_recording(&conn, id, &statement, setup.pty.as_ref()) {
            Ok(r) => Some(r),
            Err(stop) => {
                let _ = target.close().await;
                stopped(&conn, &tx, None, &stop, eol).await;
                return;
            }
        }
    };
    let started = match start {
        Start::Exec(cmd) => target.exec(true, cmd).await,
        Start::Shell => target.request_shell(true).await,
        Start::Subsystem(name) => target.request_subsystem(true, name).await,
    };
    if started.is_err() {
        refuse(
            &tx,
            &format!("jitgate: the target connection failed{eol}"),
            UNREACHABLE_STATUS,
        )
        .await;
        return;
    }
    if sftp {
        let early = super::sftp::Early {
            data: std::mem::take(&mut setup.early),
            eof: setup.eof,
            closed: setup.closed,
        };
        super::sftp::relay(&conn, id, rx, tx, target, early).await;
        return;
    }
    relay(&conn, id, rx, tx, target, setup, recorder.as_ref(), eol).await;
    if let Some(Err(stop)) = recorder.as_ref().map(ChannelRecorder::close) {
        tracing::warn!(channel = %id, "the channel's recording ended incomplete: {}", stop.audit_reason());
    }
}

fn start_recording(
    conn: &Conn,
    id: ChannelId,
    statement: &str,
    pty: Option<&PtyReq>,
) -> Result<ChannelRecorder, Stop> {
    let r = conn
        .recorder
        .channel(u32::from(id), statement, pty.is_some())?;
    if let Some(p) = pty {
        r.resize(p.cols, p.rows)?;
    }
    Ok(r)
}

/// Tell the user why, then end the channel the way a failed command does.
/// What the target says about a channel besides its data and its close, passed on to the
/// user: exit status (recorded), exit signal, the answer to the channel's request (a refusal
/// is told once, on stderr) and end of output. Anything else is dropped.
pub(super) async fn control(
    conn: &Conn,
    id: ChannelId,
    tx: &ChannelWriteHalf<Msg>,
    msg: ChannelMsg,
    confirmed: &mut bool,
) {
    match msg {
        ChannelMsg::ExitStatus { exit_status } => {
            trail::exit_status(&conn.app, &conn.ctx, exit_status);
            let _ = tx.exit_status(exit_status).await;
        }
        ChannelMsg::ExitSignal {
            signal_name,
            core_dumped,
            error_message,
            lang_tag,
        } => {
            let _ = conn
                .handle
                .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                .await;
        }
        ChannelMsg::Success => *confirmed = true,
        ChannelMsg::Failure if !*confirmed => {
            *confirmed = true;
            let msg = Bytes::from_static(b"jitgate: the target refused the request\n");
            let _ = tx.extended_data_bytes(1, msg).await;
        }
        ChannelMsg::Eof => {
            let _ = tx.eof().await;
        }
        _ => {}
    }
}

async fn refuse(tx: &ChannelWriteHalf<Msg>, message: &str, status: u32) {
    let message = Bytes::from(message.to_string());
    let _ = tokio::time::timeout(hold::NOTICE_LIMIT, tx.extended_data_bytes(1, message)).await;
    let _ = tx.exit_status(status).await;
    let _ = tx.eof().await;
    let _ = tx.close().await;
}
