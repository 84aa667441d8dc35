//! `jitgate replay`: a session's timeline as text or JSON, or one SSH channel's recording
//! played back (or written as asciicast): its input, its output or both (`--stream`), input
//! marked. A session that recorded several channels lists them; `--channel N` picks one.
//! Everything a user typed is shown escaped, so it cannot forge lines of the timeline or
//! play back as terminal control sequences.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use std::path::PathBuf;

use super::audit::{Source, Where, api_failed, fmt_time, unreadable, urlencode};
use crate::audit::Recordings;
use timeline::{one_line, timeline};

mod timeline;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    Text,
    Json,
    Cast,
}

/// Which side of an SSH channel's recording to show.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Streams {
    /// What the user sent (keystrokes, stdin).
    Input,
    /// What the target printed (stdout and stderr).
    Output,
    /// Both, in order; input marked.
    Both,
}

impl Streams {
    fn shows(self, code: &str) -> bool {
        match code {
            "i" => self != Streams::Output,
            "o" => self != Streams::Input,
            _ => true,
        }
    }
}

pub struct ReplayArgs {
    pub id: String,
    pub format: ReplayFormat,
    pub speed: f64,
    pub idle_cap: f64,
    pub output: Option<PathBuf>,
    /// The SSH channel to replay.
    pub channel: Option<u32>,
    pub streams: Streams,
}

/// An SSH session's recordings as read: the channels, and the cast of the one to replay
/// (the named channel, or the only one).
struct Recorded {
    channels: Vec<Value>,
    cast: Option<String>,
}

fn chosen_channel(channels: &[Value], named: Option<u32>) -> Option<u64> {
    match (named, channels) {
        (Some(c), _) => Some(u64::from(c)),
        (None, [one]) => one["channel"].as_u64(),
        _ => None,
    }
}

pub fn replay(w: Where, a: ReplayArgs) -> ExitCode {
    let fetched = match w.source() {
        Err(code) => return code,
        Ok(Source::Api(api)) => {
            let session = match api.get(&format!("/v1/sessions/{}", urlencode(&a.id))) {
                Ok(v) => v,
                Err(e) => return api_failed(e),
            };
            let events = match api.get(&format!("/v1/sessions/{}/events", urlencode(&a.id))) {
                Ok(Value::Array(v)) => v,
                Ok(_) => Vec::new(),
                Err(e) => return api_failed(e),
            };
            let recorded = (session["protocol"] == "ssh").then(|| {
                let channels =
                    match api.get(&format!("/v1/sessions/{}/recordings", urlencode(&a.id))) {
                        Ok(Value::Array(v)) => v,
                        _ => Vec::new(),
                    };
                let cast = chosen_channel(&channels, a.channel).and_then(|c| {
                    api.get_text(&format!(
                        "/v1/sessions/{}/recording?channel={c}",
                        urlencode(&a.id)
                    ))
                    .ok()
                });
                Recorded { channels, cast }
            });
            (session, events, recorded)
        }
        Ok(Source::Direct(direct)) => {
            let (s, events) = match direct.session_history(&a.id) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    eprintln!("jitgate: no session {} in the audit trail", a.id);
                    return ExitCode::from(1);
                }
                Err(e) => return unreadable(e),
            };
            let ssh = s.protocol == "ssh";
            let recordings = ssh.then(|| Recordings::new(Some(s.clone()), events.clone()));
            let events = events
                .into_iter()
                .filter_map(|e| serde_json::to_value(e).ok())
                .collect();
            let recorded = recordings.map(|recordings| {
                let channels: Vec<Value> = recordings
                    .channels()
                    .iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect();
                let cast = chosen_channel(&channels, a.channel)
                    .and_then(|c| u32::try_from(c).ok())
                    .and_then(|c| recordings.cast(c));
                Recorded { channels, cast }
            });
            (
                serde_json::to_value(s).unwrap_or_default(),
                events,
                recorded,
            )
        }
    };
    let (session, events, recorded) = fetched;
    let channels = recorded
        .as_ref()
        .map(|r| r.channels.as_slice())
        .unwrap_or(&[]);
    if let Some(c) = a.channel
        && !channels
            .iter()
            .any(|x| x["channel"].as_u64() == Some(u64::from(c)))
    {
        eprintln!(
            "jitgate: session {} has no recording of channel {c}{}",
            a.id,
            channel_hint(channels)
        );
        return ExitCode::from(1);
    }
    let cast = recorded.as_ref().and_then(|r| r.cast.as_deref());
    let out: Box<dyn Write> = match &a.output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("jitgate: cannot write {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(std::io::stdout().lock()),
    };
    let r = match a.format {
        ReplayFormat::Json => write_json(out, &session, &events),
        ReplayFormat::Cast => match cast {
            Some(c) => write_all(out, &only_streams(c, a.streams)),
            None if channels.len() > 1 => {
                eprintln!(
                    "jitgate: session {} recorded several channels; name one with --channel N{}",
                    a.id,
                    channel_hint(channels)
                );
                return ExitCode::from(1);
            }
            None => {
                eprintln!(
                    "jitgate: session {} has no terminal recording (only SSH sessions do); use --format text or json",
                    a.id
                );
                return ExitCode::from(1);
            }
        },
        ReplayFormat::Text => match cast {
            Some(c) if a.output.is_none() => {
                let terminal = std::io::stdout().is_terminal();
                play(out, c, a.speed, a.idle_cap, a.streams, terminal)
            }
            _ if channels.len() > 1 && a.output.is_none() => {
                timeline(out, &session, &events).and_then(|()| list_channels(&session, channels))
            }
            _ => timeline(out, &session, &events),
        },
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitgate: {e}");
            ExitCode::from(2)
        }
    }
}

fn channel_hint(channels: &[Value]) -> String {
    if channels.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = channels.iter().map(|c| c["channel"].to_string()).collect();
    format!(" (recorded channels: {})", ids.join(", "))
}

/// The recorded channels of an SSH session, one line each, and how to replay one.
fn list_channels(session: &Value, channels: &[Value]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "recorded channels:")?;
    for c in channels {
        let line = format!(
            "  channel {}  {}  started {}  {} bytes in, {} bytes out",
            c["channel"],
            one_line(
                c["command"].as_str().unwrap_or("(command not recorded)"),
                80
            ),
            fmt_time(c["started_at"].as_f64().unwrap_or(0.0)),
            c["input_bytes"],
            c["output_bytes"],
        );
        writeln!(out, "{}", crate::escape::terminal(&line))?;
    }
    writeln!(
        out,
        "replay one with: jitgate replay {} --channel N [--stream input|output|both]",
        crate::escape::terminal(session["id"].as_str().unwrap_or("SESSION"))
    )?;
    out.flush()
}

/// The cast with only the chosen streams' events (the header and resizes stay).
fn only_streams(cast: &str, streams: Streams) -> String {
    let mut out = String::with_capacity(cast.len());
    for (n, line) in cast.lines().enumerate() {
        let keep = n == 0
            || match serde_json::from_str::<Value>(line) {
                Ok(Value::Array(f)) => {
                    streams.shows(f.get(1).and_then(Value::as_str).unwrap_or(""))
                }
                _ => true,
            };
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn write_all(mut out: Box<dyn Write>, s: &str) -> std::io::Result<()> {
    out.write_all(s.as_bytes())?;
    out.flush()
}

fn write_json(mut out: Box<dyn Write>, session: &Value, events: &[Value]) -> std::io::Result<()> {
    let v = json!({ "session": session, "events": events });
    serde_json::to_writer_pretty(&mut out, &v)?;
    writeln!(out)?;
    out.flush()
}

/// How input shows in playback: with output, inline and marked (`⟦input: …⟧`, reverse
/// video on a terminal); alone, one line per chunk with its offset. Always escaped: what
/// was typed is shown, never replayed to the terminal.
fn input_text(t: f64, data: &str, streams: Streams, terminal: bool) -> String {
    let typed = crate::escape::terminal(data);
    match (streams, terminal) {
        (Streams::Input, _) => format!("{t:>+10.3}s  {typed}\n"),
        (_, true) => format!("\x1b[7m⟦input: {typed}⟧\x1b[27m"),
        (_, false) => format!("⟦input: {typed}⟧"),
    }
}

/// Play an asciicast back with its timing: pauses divided by `speed`, none longer than
/// `idle_cap` seconds; only the chosen streams.
fn play(
    mut out: Box<dyn Write>,
    cast: &str,
    speed: f64,
    idle_cap: f64,
    streams: Streams,
    terminal: bool,
) -> std::io::Result<()> {
    let speed = if speed.is_finite() && speed >= 0.01 {
        speed
    } else {
        1.0
    };
    let idle_cap = if idle_cap.is_finite() {
        idle_cap.clamp(0.0, 3600.0)
    } else {
        3600.0
    };
    let mut last = 0.0f64;
    for line in cast.lines().skip(1) {
        let Ok(Value::Array(f)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let t = f.first().and_then(Value::as_f64).unwrap_or(last);
        let code = f.get(1).and_then(Value::as_str).unwrap_or("");
        if !(code == "o" || code == "i") || !streams.shows(code) {
            continue;
        }
        let pause = ((t - last).max(0.0) / speed).min(idle_cap);
        last = t;
        if pause > 0.0 {
            out.flush()?;
            std::thread::sleep(Duration::try_from_secs_f64(pause).unwrap_or_default());
        }
        let data = f.get(2).and_then(Value::as_str).unwrap_or("");
        if code == "o" {
            out.write_all(data.as_bytes())?;
        } else {
            out.write_all(input_text(t, data, streams, terminal).as_bytes())?;
        }
    }
    out.flush()
}
