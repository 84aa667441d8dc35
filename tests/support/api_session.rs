//! A tokio-postgres session of the approvals fixture, the helpers that await and read its
//! statements, and the API's request stream. Part of `api.rs` (included from there).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use super::POLL;

/// A tokio-postgres session as alice through the proxy, with its notices on a channel.
pub struct Session {
    pub client: Arc<Client>,
    pub messages: UnboundedReceiver<Result<AsyncMessage, tokio_postgres::Error>>,
}

pub type SimpleResult = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>;

impl Session {
    /// Runs `sql` (simple protocol) on a task, so the test can decide it meanwhile.
    pub fn spawn_simple(&self, sql: &str) -> JoinHandle<SimpleResult> {
        let client = self.client.clone();
        let sql = sql.to_string();
        tokio::spawn(async move { client.simple_query(&sql).await })
    }

    /// The next notice's message (skips notifications); panics after [`POLL`] or on a
    /// connection error.
    pub async fn notice(&mut self) -> String {
        let wait = async {
            loop {
                match self.messages.recv().await {
                    Some(Ok(AsyncMessage::Notice(n))) => return n.message().to_string(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("connection failed while waiting for a notice: {e}"),
                    None => panic!("connection closed while waiting for a notice"),
                }
            }
        };
        tokio::time::timeout(POLL, wait)
            .await
            .expect("no notice within the poll timeout")
    }

    /// The notices received so far (without waiting).
    pub fn notices_so_far(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(m) = self.messages.try_recv() {
            if let Ok(AsyncMessage::Notice(n)) = m {
                out.push(n.message().to_string());
            }
        }
        out
    }

    /// A simple query that must succeed; column 0 of the first row.
    pub async fn value(&self, sql: &str) -> String {
        let rows = self
            .client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{sql}: no row"))
    }
}

/// Awaits a spawned statement (at most [`POLL`]).
pub async fn finish<T>(h: JoinHandle<T>) -> T {
    tokio::time::timeout(POLL, h)
        .await
        .expect("the held statement did not finish within the poll timeout")
        .expect("statement task panicked")
}

/// The SQLSTATE and message of a failed statement; panics if it succeeded.
pub fn failure<T: std::fmt::Debug>(r: Result<T, tokio_postgres::Error>) -> (String, String) {
    match r {
        Ok(v) => panic!("expected an error, the statement succeeded: {v:?}"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("not a server error: {e:?}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

/// The rows-affected count of the last CommandComplete in a simple query's result.
pub fn affected(msgs: &[SimpleQueryMessage]) -> Option<u64> {
    msgs.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    })
}

/// An open `GET /v1/requests/stream` (raw HTTP/1.1: the body never ends by itself).
pub struct RequestStream {
    tcp: std::net::TcpStream,
    seen: String,
}

impl RequestStream {
    pub fn open(addr: SocketAddr, token: &str) -> RequestStream {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect to the API");
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        write!(
            tcp,
            "GET /v1/requests/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .expect("send the stream request");
        let mut s = RequestStream {
            tcp,
            seen: String::new(),
        };
        s.read_until("\r\n\r\n");
        assert!(s.seen.starts_with("HTTP/1.1 200"), "stream: {}", s.seen);
        s
    }

    /// Reads until `needle` has arrived (panics after [`POLL`]); returns everything so far.
    pub fn read_until(&mut self, needle: &str) -> &str {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(
                start.elapsed() < POLL,
                "{needle:?} never came on the stream; got:\n{}",
                self.seen
            );
            match self.tcp.read(&mut buf) {
                Ok(0) => panic!("stream closed; got:\n{}", self.seen),
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => continue,
            }
        }
        &self.seen
    }
}
