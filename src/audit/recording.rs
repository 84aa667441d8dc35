//! SSH session recordings as asciicast v2: a JSON header line, then one `[t, code, data]`
//! line per Recording event, in order (`o` output, `i` input, `r` resize `"COLSxROWS"`).
//! The header's size is the first resize's (80×24 without one).

use serde_json::json;

use super::event::{EventRecord, SessionRecord};

pub fn asciicast(session: Option<&SessionRecord>, events: &[EventRecord]) -> Option<String> {
    let frames: Vec<&EventRecord> = events.iter().filter(|e| e.kind() == "recording").collect();
    if frames.is_empty() {
        return None;
    }
    let (mut width, mut height) = (80u64, 24u64);
    if let Some(size) = frames.iter().find(|e| e.str("stream") == Some("r"))
        && let Some((w, h)) = size.str("data").and_then(|d| d.split_once('x'))
        && let (Ok(w), Ok(h)) = (w.trim().parse(), h.trim().parse())
    {
        (width, height) = (w, h);
    }
    let mut header = json!({ "version": 2, "width": width, "height": height });
    let start = session.map(|s| s.started_at).unwrap_or(events[0].at);
    header["timestamp"] = json!(start as u64);
    if let Some(s) = session {
        header["title"] = json!(format!("{}@{} ({})", s.user, s.target, s.id));
    }
    let mut out = header.to_string();
    out.push('\n');
    for f in frames {
        let t = f.get("t").and_then(|v| v.as_f64()).unwrap_or(f.at - start);
        let line = json!([
            t,
            f.str("stream").unwrap_or("o"),
            f.str("data").unwrap_or("")
        ]);
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Some(out)
}
