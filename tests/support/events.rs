//! Audit events as the API returns them, read the way the timeline shows them: a result
//! joined to its statement (`"result"` inside a `statement` event, when it arrived before the
//! audit writer took the statement) follows it as the `result` event it is otherwise stored
//! as. Which of the two a result becomes depends on timing; tests that check the order of
//! events read them through [`with_results`].

// Each test crate includes this file and uses what it needs of it.
#![allow(dead_code)]

use serde_json::Value;

/// `events`, each joined result after its statement as a `result` event of its own (with the
/// statement's `seq`, `"joined": true`, and the statement's `at` plus its duration).
pub fn with_results(events: &[Value]) -> Vec<Value> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let mut e = e.clone();
        let joined = e.as_object_mut().and_then(|o| o.remove("result"));
        let (seq, at, session) = (e["seq"].clone(), e["at"].as_f64(), e["session"].clone());
        out.push(e);
        if let Some(Value::Object(mut r)) = joined {
            let took = r.get("duration_us").and_then(Value::as_u64).unwrap_or(0) as f64 / 1e6;
            r.insert("kind".into(), "result".into());
            r.insert("seq".into(), seq);
            r.insert("session".into(), session);
            r.insert("at".into(), at.map_or(Value::Null, |a| (a + took).into()));
            r.insert("joined".into(), true.into());
            out.push(Value::Object(r));
        }
    }
    out
}

/// How many results are stored inside their statements' events.
pub fn joined(events: &[Value]) -> usize {
    events.iter().filter(|e| e.get("result").is_some()).count()
}
