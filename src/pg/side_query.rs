//! A query of jitgate's own on a separate connection to a target: the impact preview's
//! `EXPLAIN` and the catalog snapshot. Never a client's session.
//!
//! Invariants:
//! - every answer is read whole into a buffer no longer than the caller's `max_message`; a
//!   longer (or shorter than possible) length ends the exchange with an error, so a target
//!   cannot make jitgate allocate without bound;
//! - the server's ErrorResponse is the exchange's error (its message), reported once the
//!   server is ready again; the connection is closed with a Terminate either way it ends
//!   normally.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::msg;
use super::upstream::Upstream;

/// Sends `messages` (whole messages, ending in a Sync or a simple Query) on `up` and hands
/// each answer's tag and body to `answer` until ReadyForQuery. `answer` returning an error
/// stops the exchange at once with that error.
pub async fn exchange(
    mut up: Upstream,
    messages: &[u8],
    max_message: usize,
    mut answer: impl FnMut(u8, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    up.stream
        .write_all(messages)
        .await
        .map_err(|e| e.to_string())?;
    up.stream.flush().await.map_err(|e| e.to_string())?;
    let mut error = None;
    loop {
        let tag = up.stream.read_u8().await.map_err(|e| e.to_string())?;
        let len = up.stream.read_i32().await.map_err(|e| e.to_string())?;
        let len = usize::try_from(len).unwrap_or(0);
        if !(4..=max_message).contains(&len) {
            return Err("bad message from the server".into());
        }
        let mut body = vec![0u8; len - 4];
        up.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        match tag {
            b'E' => {
                let fields = msg::fields(&body).unwrap_or_default();
                error = Some(
                    msg::field(&fields, b'M')
                        .unwrap_or("query failed")
                        .to_string(),
                );
            }
            b'Z' => break,
            _ => answer(tag, &body)?,
        }
    }
    let mut bye = BytesMut::new();
    msg::frame(&mut bye, b'X', &[]);
    let _ = up.stream.write_all(&bye).await;
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
