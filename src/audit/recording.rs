//! SSH session recordings, one per channel, as asciicast v2: a JSON header line, then one
//! `[t, code, data]` line per Recording event of that channel, in order (`o` output, `i`
//! input, `r` resize `"COLSxROWS"`).
//!
//! A channel's `c` event (its start request, recorded before the command ran) becomes the
//! header's `command`; `t` counts from the channel's first event; the header's size is the
//! channel's first resize (80×24 without one) and its `timestamp` the channel's start.
//! Channels of one session never share a cast.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use super::event::{EventRecord, SessionRecord};

/// One recorded channel of a session, as listed by the API and `jitgate replay`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRecording {
    /// The SSH channel id.
    pub channel: u32,
    /// The start request: a command, `<interactive shell>` or `subsystem NAME` (absent in
    /// recordings made before channels recorded it).
    pub command: Option<String>,
    /// Unix seconds when the channel's recording started.
    pub started_at: f64,
    /// Bytes the client sent (as recorded).
    pub input_bytes: u64,
    /// Bytes the target sent on stdout and stderr.
    pub output_bytes: u64,
}

/// A session's recordings, channel by channel.
pub struct Recordings {
    session: Option<SessionRecord>,
    frames: Vec<EventRecord>,
}

fn channel_of(e: &EventRecord) -> u32 {
    e.u64("channel")
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

fn stream_of(e: &EventRecord) -> &str {
    e.str("stream").unwrap_or("o")
}

fn data_of(e: &EventRecord) -> &str {
    e.str("data").unwrap_or("")
}

impl Recordings {
    pub fn new(session: Option<SessionRecord>, events: Vec<EventRecord>) -> Recordings {
        let frames = events
            .into_iter()
            .filter(|e| e.kind() == "recording")
            .collect();
        Recordings { session, frames }
    }

    fn start(&self) -> f64 {
        self.session
            .as_ref()
            .map(|s| s.started_at)
            .or_else(|| self.frames.first().map(|f| f.at))
            .unwrap_or(0.0)
    }

    /// `t` of a frame: seconds since the session started.
    fn t(&self, f: &EventRecord) -> f64 {
        f.get("t")
            .and_then(|v| v.as_f64())
            .unwrap_or(f.at - self.start())
    }

    /// The recorded channels, in channel id order.
    pub fn channels(&self) -> Vec<ChannelRecording> {
        let mut by_id: BTreeMap<u32, ChannelRecording> = BTreeMap::new();
        for f in &self.frames {
            let id = channel_of(f);
            let t = self.t(f);
            let start = self.start();
            let c = by_id.entry(id).or_insert_with(|| ChannelRecording {
                channel: id,
                command: None,
                started_at: start + t,
                input_bytes: 0,
                output_bytes: 0,
            });
            match stream_of(f) {
                "c" if c.command.is_none() => c.command = Some(data_of(f).to_string()),
                "i" => c.input_bytes += data_of(f).len() as u64,
                "o" => c.output_bytes += data_of(f).len() as u64,
                _ => {}
            }
        }
        by_id.into_values().collect()
    }

    /// The asciicast of one channel, if it recorded anything.
    pub fn cast(&self, channel: u32) -> Option<String> {
        let frames: Vec<&EventRecord> = self
            .frames
            .iter()
            .filter(|f| channel_of(f) == channel)
            .collect();
        let first = frames.first()?;
        let origin = self.t(first);
        let (mut width, mut height) = (80u64, 24u64);
        if let Some(size) = frames.iter().find(|f| stream_of(f) == "r")
            && let Some((w, h)) = data_of(size).split_once('x')
            && let (Ok(w), Ok(h)) = (w.trim().parse(), h.trim().parse())
        {
            (width, height) = (w, h);
        }
        let mut header = json!({ "version": 2, "width": width, "height": height });
        header["timestamp"] = json!((self.start() + origin) as u64);
        if let Some(s) = &self.session {
            header["title"] = json!(format!(
                "{}@{} ({}, channel {channel})",
                s.user, s.target, s.id
            ));
        }
        if let Some(c) = frames.iter().find(|f| stream_of(f) == "c") {
            header["command"] = json!(data_of(c));
        }
        let mut out = header.to_string();
        out.push('\n');
        for f in frames {
            let code = stream_of(f);
            if code == "c" {
                continue;
            }
            // Rounded to microseconds: the offset must not print as 0.30000000000000004.
            let t = ((self.t(f) - origin).max(0.0) * 1e6).round() / 1e6;
            out.push_str(&json!([t, code, data_of(f)]).to_string());
            out.push('\n');
        }
        Some(out)
    }

    /// The cast of the session's only recorded channel (`None` with none or several).
    pub fn only(&self) -> Option<String> {
        match self.channels().as_slice() {
            [one] => self.cast(one.channel),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::{EventRecord, Recordings};

    fn frame(seq: u64, channel: u32, t: f64, stream: &str, data: &str) -> EventRecord {
        let fields: Map<String, Value> = json!({
            "kind": "recording", "channel": channel, "t": t, "stream": stream, "data": data,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        EventRecord {
            seq,
            at: 1_800_000_000.0 + t,
            session: "s1".into(),
            fields,
            hash: String::new(),
        }
    }

    #[test]
    fn each_channel_has_its_own_cast_with_its_command() {
        let r = Recordings::new(
            None,
            vec![
                frame(1, 0, 0.5, "c", "cat"),
                frame(2, 0, 0.6, "i", "one\n"),
                frame(3, 1, 1.0, "c", "<interactive shell>"),
                frame(4, 1, 1.0, "r", "100x30"),
                frame(5, 0, 1.1, "o", "one\n"),
                frame(6, 1, 1.3, "i", "ls\r"),
            ],
        );
        let channels = r.channels();
        assert_eq!(channels.len(), 2);
        assert_eq!(channels[0].command.as_deref(), Some("cat"));
        assert_eq!((channels[0].input_bytes, channels[0].output_bytes), (4, 4));
        assert_eq!(channels[1].command.as_deref(), Some("<interactive shell>"));
        assert_eq!(r.only(), None, "two channels: no single cast");

        let cast = r.cast(1).expect("channel 1");
        let lines: Vec<Value> = cast
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines[0]["command"], "<interactive shell>");
        assert_eq!(
            (lines[0]["width"].clone(), lines[0]["height"].clone()),
            (100.into(), 30.into())
        );
        assert_eq!(
            &lines[1..],
            &[json!([0.0, "r", "100x30"]), json!([0.3, "i", "ls\r"])]
        );
        assert!(r.cast(7).is_none());
    }
}
