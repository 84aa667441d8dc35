//! Reading a side into its buffer without making an idle session hold a read buffer.
//!
//! A session spends most of its life waiting for its next statement. A buffer reserved for
//! that wait would be memory per idle session (8 KiB per side, two sides), so a side whose
//! buffer is empty is read through its thread's scratch buffer: the bytes a read brings are
//! then copied into the side's buffer, which is allocated to fit them. The scratch buffer is
//! borrowed only inside one poll (a read that is not ready leaves it untouched), so the many
//! sessions of one session thread share it. A side with bytes already waiting (the rest of a
//! frame) reads straight into its buffer, as before.
//!
//! Invariant: [`read_some`] hands back exactly what the stream read, in order; the copy is
//! the only difference between the two paths.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{MIN_SPARE, READ_CHUNK};

thread_local! {
    /// This thread's scratch buffer for reads into empty buffers.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Read once from `stream` into `buf`: `Ok(0)` at end of stream, else how many bytes came.
pub(super) async fn read_some<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if !buf.is_empty() {
        if buf.capacity() - buf.len() < MIN_SPARE {
            buf.reserve(4 * MIN_SPARE);
        }
        return stream.read_buf(buf).await;
    }
    std::future::poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(scratch);
            match Pin::new(&mut *stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    buf.extend_from_slice(read.filled());
                    Poll::Ready(Ok(read.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn both_paths_hand_back_every_byte_in_order() {
        let (mut writer, mut reader) = tokio::io::duplex(1 << 20);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let to_send = sent.clone();
        let producer = tokio::spawn(async move {
            for chunk in to_send.chunks(7_919) {
                writer.write_all(chunk).await.expect("write");
            }
        });
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        loop {
            let n = read_some(&mut reader, &mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            // Keep a few bytes back now and then, so the direct path is taken too.
            let keep = usize::from(got.len() % 3 == 0).min(buf.len());
            let take = buf.len() - keep;
            got.extend_from_slice(&buf.split_to(take));
        }
        got.extend_from_slice(&buf);
        producer.await.expect("producer");
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn an_idle_side_holds_no_buffer() {
        let (mut writer, mut reader) = tokio::io::duplex(64);
        writer.write_all(b"hello").await.expect("write");
        let mut buf = BytesMut::new();
        assert_eq!(read_some(&mut reader, &mut buf).await.expect("read"), 5);
        assert_eq!(&buf[..], b"hello");
        assert!(buf.capacity() < MIN_SPARE, "{}", buf.capacity());
    }
}
