//! A loopback webhook receiver: an HTTP/1.1 server that answers 200 to every POST and keeps
//! the JSON bodies in arrival order, for tests of what jitgate posts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Received bodies (a body that is not JSON is kept as a string).
pub type Bodies = Arc<Mutex<Vec<Value>>>;

/// Start a receiver; its URL (`http://127.0.0.1:PORT/hook`) and what it has received.
pub fn webhook_receiver() -> (String, Bodies) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook receiver");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("receiver address")
    );
    let bodies = Bodies::default();
    let keep = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || serve(conn, &keep));
        }
    });
    (url, bodies)
}

/// Every request of one connection (keep-alive requests are read in turn).
fn serve(mut conn: std::net::TcpStream, keep: &Bodies) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let (mut line, mut len) = (String::new(), 0usize);
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        keep.lock().unwrap_or_else(|p| p.into_inner()).push(v);
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if conn.write_all(ok.as_bytes()).is_err() {
            return;
        }
    }
}
