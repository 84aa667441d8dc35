//! The recorder without sockets: events per channel, the limit, a failing store, hidden
//! password lines.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{HIDDEN, Recorder, Sink, Stop, asks_secret, utf8_whole};
use crate::audit::{Audit, AuditOptions};

type Events = Arc<Mutex<Vec<(u32, char, String)>>>;

fn recorder(limit: usize, fail_after: Option<usize>) -> (Arc<Recorder>, Events) {
    let events: Events = Arc::default();
    let seen = events.clone();
    let sink: Sink = Box::new(move |channel, _t, stream, data| {
        let mut e = seen.lock().expect("events lock");
        if fail_after.is_some_and(|n| e.len() >= n) {
            return Err("disk on fire".into());
        }
        e.push((channel, stream, data.as_str().into_owned()));
        Ok(())
    });
    (
        Arc::new(Recorder::with_sink(sink, None, Instant::now(), limit)),
        events,
    )
}

fn stream(events: &Events, channel: u32, code: char) -> String {
    let e = events.lock().expect("events lock");
    e.iter()
        .filter(|(c, s, _)| *c == channel && *s == code)
        .map(|(_, _, d)| d.as_str())
        .collect()
}

#[test]
fn keeps_split_characters_whole() {
    assert_eq!(utf8_whole(b"abc"), 3);
    let e = "é".as_bytes();
    assert_eq!(utf8_whole(&[b'a', e[0]]), 1);
    assert_eq!(
        utf8_whole(&[0xff, b'a']),
        2,
        "invalid bytes are not held back"
    );
}

#[test]
fn channels_record_apart_with_their_command_input_and_output() {
    let (rec, events) = recorder(1 << 20, None);
    let one = rec.channel(0, "cat", false).expect("channel 0");
    let two = rec
        .channel(1, "<interactive shell>", true)
        .expect("channel 1");
    one.input(b"from one\n").expect("input");
    two.input(b"ls\r").expect("input");
    one.output(b"from one\n").expect("output");
    two.output(b"file\r\n$ ").expect("output");
    one.close().expect("close");
    two.close().expect("close");
    assert_eq!(stream(&events, 0, 'c'), "cat");
    assert_eq!(stream(&events, 1, 'c'), "<interactive shell>");
    assert_eq!(stream(&events, 0, 'i'), "from one\n");
    assert_eq!(stream(&events, 1, 'i'), "ls\r");
    assert_eq!(stream(&events, 0, 'o'), "from one\n");
    assert_eq!(stream(&events, 1, 'o'), "file\r\n$ ");
}

#[test]
fn the_limit_stops_every_channel_of_the_session() {
    let (rec, events) = recorder(100, None);
    let one = rec.channel(0, "head", false).expect("channel 0");
    let two = rec
        .channel(1, "<interactive shell>", true)
        .expect("channel 1");
    one.output(&[b'x'; 60]).expect("fits");
    two.input(&[b'y'; 40]).expect("fits exactly");
    assert_eq!(one.output(b"z"), Err(Stop::Limit(100)), "one byte over");
    assert_eq!(two.input(b"touch /tmp/x\r"), Err(Stop::Limit(100)));
    assert_eq!(two.output(b""), Err(Stop::Limit(100)), "sticky");
    assert!(rec.channel(2, "ls", false).is_err(), "no new channel");
    let _ = one.close();
    let _ = two.close();
    assert!(!stream(&events, 1, 'i').contains("touch"));
    assert_eq!(stream(&events, 0, 'o').len(), 60);
}

#[test]
fn a_store_failure_stops_the_recording() {
    let (rec, _events) = recorder(1 << 20, Some(1));
    let one = rec.channel(0, "cat", false).expect("the start is recorded");
    one.input(b"a").expect("buffered");
    assert!(matches!(one.output(b"b"), Err(Stop::Store(_))));
    assert!(matches!(one.input(b"c"), Err(Stop::Store(_))));
    assert!(rec.stopped().is_some());
}

#[test]
fn a_line_typed_at_a_password_prompt_is_hidden() {
    let (rec, events) = recorder(1 << 20, None);
    let shell = rec
        .channel(0, "<interactive shell>", true)
        .expect("channel");
    shell.output(b"$ ").expect("output");
    shell.input(b"sudo -k true\r").expect("input");
    shell
        .output(b"sudo -k true\r\n[sudo] password for alice: ")
        .expect("output");
    shell.input(b"hunt").expect("input");
    shell.input(b"er2\rec").expect("input");
    shell.input(b"ho done\r").expect("input");
    shell.close().expect("close");
    let typed = stream(&events, 0, 'i');
    assert_eq!(typed, format!("sudo -k true\r{HIDDEN}\recho done\r"));
    assert!(!typed.contains("hunter2"));
}

#[test]
fn input_without_a_terminal_is_recorded_as_sent() {
    let (rec, events) = recorder(1 << 20, None);
    let exec = rec.channel(0, "cat", false).expect("channel");
    exec.output(b"Password: ").expect("output");
    exec.input(b"data\n").expect("input");
    exec.close().expect("close");
    assert_eq!(stream(&events, 0, 'i'), "data\n");
}

#[test]
fn password_prompts() {
    for yes in [
        "[sudo] password for alice: ",
        "alice@web-1's password:",
        "Enter passphrase for key '/root/.ssh/id_ed25519': ",
        "Enter PIN:",
        "Password:",
        "New password: ",
    ] {
        assert!(asks_secret(yes.as_bytes()), "{yes}");
    }
    for no in ["$ ", "password.txt", "ping: ", "# passwd alice", "Login:"] {
        assert!(!asks_secret(no.as_bytes()), "{no}");
    }
}

#[tokio::test]
async fn a_commit_emits_what_is_buffered() {
    let (rec, events) = recorder(1 << 20, None);
    let shell = rec
        .channel(0, "<interactive shell>", true)
        .expect("channel");
    shell.input(b"l").expect("input");
    assert!(!shell.ends_line(b"l"));
    assert!(shell.ends_line(b"s\r"));
    shell.input(b"s\r").expect("input");
    assert_eq!(stream(&events, 0, 'i'), "", "still coalescing");
    shell.commit().await.expect("commit");
    assert_eq!(stream(&events, 0, 'i'), "ls\r");
    let exec = rec.channel(1, "cat", false).expect("channel");
    assert!(!exec.ends_line(b"data\n"), "no terminal: nothing waits");
}

/// The real store: what a channel records is read back in order, and once the store fails
/// the recording stops (a commit refuses, and so does the next chunk).
#[tokio::test]
async fn on_the_real_store_a_failure_stops_the_recording() {
    let dir = std::env::temp_dir().join(format!(
        "jitgate-record-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let audit = Audit::open(&dir, AuditOptions::default()).expect("open the store");
    audit.start();
    let backlog = audit.backlog();
    let rec = Arc::new(Recorder::on_audit(
        audit.clone(),
        Arc::from("s-rec"),
        backlog,
        Instant::now(),
        1 << 20,
    ));
    let shell = rec
        .channel(4, "<interactive shell>", true)
        .expect("channel");
    shell.input(b"ls\r").expect("input");
    shell.commit().await.expect("on disk");
    let events = audit.events("s-rec");
    let kinds: Vec<(Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| (e.str("stream"), e.str("data")))
        .collect();
    assert_eq!(
        kinds,
        [
            (Some("c"), Some("<interactive shell>")),
            (Some("i"), Some("ls\r"))
        ]
    );
    assert_eq!(events[0].u64("channel"), Some(4));

    audit.inject_failure();
    shell
        .input(b"rm -rf /srv/app\r")
        .expect("queued before the failure is known");
    assert!(matches!(shell.commit().await, Err(Stop::Store(_))));
    assert!(matches!(shell.output(b"x"), Err(Stop::Store(_))));
    assert!(rec.channel(5, "ls", false).is_err());
    drop(audit);
    let _ = std::fs::remove_dir_all(&dir);
}
