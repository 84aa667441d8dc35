//! The append-only segment files that hold the chain's blocks (sled keeps only the indexes).
//!
//! Files: `segments/<first seq, 20 digits>.seg` in the store's directory, each a run of frames
//! `length (u32 BE) ‖ stored block` ([`super::chain`]'s format, as sled held it before),
//! followed by zeros. A group commit appends all its frames with ONE `write` and ONE
//! `fdatasync`; only then does the writer put the blocks' [`Location`]s (and the head, the
//! session index) into sled, unflushed. A new segment is started at a commit once the current
//! one passes its target size, and the directory is synced when a file is created.
//!
//! The file is kept zero-filled [`PREALLOCATE`] bytes ahead of the data (as Postgres does
//! with its WAL): a commit overwrites blocks the file already has, so its `fdatasync` writes
//! data only, with no metadata for the file system's journal to commit (on ext4 that journal
//! commit is what made an appending `fdatasync` slow, and slower still while other processes
//! write). Once per [`PREALLOCATE`] bytes a commit extends the zeros in the same write and
//! sync. A frame length of zero is therefore where the data ends.
//!
//! Invariants:
//! - **The index points only into synced ranges.** Every `l` key in sled names bytes that
//!   were `fdatasync`ed before the key was written. sled may lose its last unflushed batches
//!   in a crash, so a segment can hold synced blocks past what sled indexes, never the reverse.
//! - **Recovery on open** ([`recover`]) walks the frames after the last indexed block (every
//!   segment from there on), checks each against the chain (its first event follows the head,
//!   it links to the head's hash, every event's hash is right) and indexes it again, as the
//!   lost batch would have. The first frame that does not check out is a torn tail: in the
//!   last segment, the file is truncated there; anywhere earlier it cannot be a torn write,
//!   so the store refuses to open rather than guess. What was indexed is never truncated, so
//!   an edited block there is left for [`super::verify`] to name.
//! - **Retention** removes whole segments: a segment goes once every block in it is pruned
//!   (the next segment starts at or before the first event kept); the last one is never
//!   removed (the writer appends to it).
//! - Only the writer thread appends (and [`recover`] before it starts); readers open the files
//!   read-only and read a frame at its location, so a read never sees a partial commit.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where a stored block is: its segment (the segment's first seq), the offset of the block's
/// bytes (after the frame's length) and their length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub fn encode(&self) -> [u8; 20] {
        let mut b = [0; 20];
        b[..8].copy_from_slice(&self.segment.to_be_bytes());
        b[8..16].copy_from_slice(&self.offset.to_be_bytes());
        b[16..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Location> {
        let b: &[u8; 20] = b.try_into().ok()?;
        Some(Location {
            segment: u64::from_be_bytes(b[..8].try_into().ok()?),
            offset: u64::from_be_bytes(b[8..16].try_into().ok()?),
            len: u32::from_be_bytes(b[16..].try_into().ok()?),
        })
    }

    /// The offset just past this block (where the next frame starts).
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// Bytes before a frame's block: its length.
pub const FRAME_HEADER: u64 = 4;
/// How far ahead of the data a segment file is kept zero-filled.
pub const PREALLOCATE: u64 = 1 << 20;
/// Largest block a frame may announce (a damaged length must not allocate gigabytes).
const MAX_FRAME: u32 = 64 << 20;

/// The segment directory of a store (read side; cheap to clone).
#[derive(Clone, Debug)]
pub struct Segments {
    dir: PathBuf,
}

impl Segments {
    pub fn new(store_dir: &Path) -> Segments {
        Segments {
            dir: store_dir.join("segments"),
        }
    }

    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.seg"))
    }

    /// Every segment's id, in order (none if the directory does not exist yet).
    pub fn list(&self) -> io::Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            ids.push(id);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    pub fn remove(&self, id: u64) -> io::Result<()> {
        std::fs::remove_file(self.path(id))
    }

    /// A reader that keeps the last segment it read open.
    pub fn reader(&self) -> Reader {
        Reader {
            segments: self.clone(),
            open: None,
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// Reads blocks at their locations.
pub struct Reader {
    segments: Segments,
    open: Option<(u64, File)>,
}

impl Reader {
    pub fn read(&mut self, at: &Location) -> io::Result<Vec<u8>> {
        if at.len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a block location with an impossible length",
            ));
        }
        let file = match &mut self.open {
            Some((id, f)) if *id == at.segment => f,
            slot => {
                &mut slot
                    .insert((at.segment, File::open(self.segments.path(at.segment))?))
                    .1
            }
        };
        let mut buf = vec![0; at.len as usize];
        file.read_exact_at(&mut buf, at.offset)?;
        Ok(buf)
    }
}

/// The writer's end: the segment being appended to.
pub struct Appender {
    segments: Segments,
    /// Start a new segment at the next commit once the current one is this long.
    target: u64,
    current: Option<(u64, File)>,
    /// Bytes of frames in the current segment (all synced).
    len: u64,
    /// The current segment file's size: zeros from `len` to here.
    allocated: u64,
    /// [`PREALLOCATE`] zeros, to extend the file with.
    zeros: Vec<u8>,
}

impl Appender {
    /// Append to the last segment, whose frames end at `len` (what [`recover`] left), if any.
    pub fn open(segments: Segments, target: u64, last: Option<(u64, u64)>) -> io::Result<Appender> {
        let (current, allocated) = match last {
            Some((id, _)) => {
                let file = OpenOptions::new().write(true).open(segments.path(id))?;
                let size = file.metadata()?.len();
                (Some((id, file)), size)
            }
            None => (None, 0),
        };
        Ok(Appender {
            segments,
            target,
            current,
            len: last.map_or(0, |(_, len)| len),
            allocated,
            zeros: vec![0; PREALLOCATE as usize],
        })
    }

    /// Where a commit whose first event is `first_seq` goes: its segment and the offset of its
    /// first frame. Starts a new segment (created and the directory synced) if there is none
    /// or the current one has reached its target size.
    pub fn position(&mut self, first_seq: u64) -> io::Result<(u64, u64)> {
        if let Some((id, _)) = &self.current
            && self.len < self.target
        {
            return Ok((*id, self.len));
        }
        std::fs::create_dir_all(&self.segments.dir)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.segments.path(first_seq))?;
        self.segments.sync_dir()?;
        self.current = Some((first_seq, file));
        self.len = 0;
        self.allocated = 0;
        Ok((first_seq, 0))
    }

    /// Append `frames` (one commit's frames, built with [`push_frame`]) with one write and
    /// one `fdatasync` (and, once per [`PREALLOCATE`] bytes, a second write of zeros before
    /// that sync). On an error the segment is cut back to what was there (best effort: the
    /// store fails anyway, and [`recover`] cuts off a torn tail on the next open).
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        let Some((_, file)) = &mut self.current else {
            return Err(io::Error::other("no segment to append to"));
        };
        let end = self.len + frames.len() as u64;
        let extend_from = end.max(self.allocated);
        let extended = end + PREALLOCATE;
        let written = file.write_all_at(frames, self.len).and_then(|()| {
            if end > self.allocated {
                let n = (extended - extend_from) as usize;
                file.write_all_at(&self.zeros[..n.min(self.zeros.len())], extend_from)?;
            }
            file.sync_data()
        });
        match written {
            Ok(()) => {
                self.len = end;
                if end > self.allocated {
                    self.allocated = extended;
                }
                Ok(())
            }
            Err(e) => {
                let _ = file.set_len(self.len);
                self.allocated = self.len;
                Err(e)
            }
        }
    }
}

/// Add one frame (`block`) to a commit's `frames`; returns the block's offset in `frames`.
pub fn push_frame(frames: &mut Vec<u8>, block: &[u8]) -> u64 {
    frames.extend_from_slice(&(block.len() as u32).to_be_bytes());
    let at = frames.len() as u64;
    frames.extend_from_slice(block);
    at
}

/// One frame read back while recovering: the block and its location.
pub struct Frame {
    pub at: Location,
    pub block: Vec<u8>,
}

/// What [`scan`] found: where the segments end (the last segment's id and where its frames
/// end, after a torn tail was cut off), if there is any segment.
pub struct Scanned {
    pub last: Option<(u64, u64)>,
}

/// Walk every frame from `from` (a segment and an offset in it; `None`: from the first
/// segment) to the end of the last segment, handing each to `accept`, which says whether it
/// checks out (a frame already indexed may, and should, be accepted as it is). A segment's
/// frames end at its end or where only zeros follow. The first frame that is cut short or
/// refused, or bytes other than zeros after the last frame, end the walk: in the last segment
/// the file is truncated there (a torn tail); in an earlier one it is an error.
pub fn scan(
    segments: &Segments,
    from: Option<(u64, u64)>,
    mut accept: impl FnMut(Frame) -> Result<(), String>,
) -> io::Result<Scanned> {
    let ids = segments.list()?;
    let Some(&last_id) = ids.last() else {
        return Ok(Scanned { last: None });
    };
    let mut last = None;
    for &id in ids.iter().filter(|&&id| from.is_none_or(|(s, _)| id >= s)) {
        let path = segments.path(id);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let size = file.metadata()?.len();
        let mut at = match from {
            Some((s, offset)) if s == id => offset,
            _ => 0,
        };
        let mut torn: Option<String> = None;
        while at < size {
            let mut header = [0u8; FRAME_HEADER as usize];
            let short = size - at < FRAME_HEADER || file.read_exact_at(&mut header, at).is_err();
            if (short || header == [0; 4]) && only_zeros(&file, at, size)? {
                break; // the zero-filled rest: the frames end here
            }
            if short {
                torn = Some("a frame header cut short".into());
                break;
            }
            let len = u32::from_be_bytes(header);
            let offset = at + FRAME_HEADER;
            if len == 0 || len > MAX_FRAME || size - offset < u64::from(len) {
                torn = Some(format!("a frame of {len} bytes that is not all there"));
                break;
            }
            let mut block = vec![0; len as usize];
            file.read_exact_at(&mut block, offset)?;
            let here = Location {
                segment: id,
                offset,
                len,
            };
            if let Err(why) = accept(Frame { at: here, block }) {
                torn = Some(why);
                break;
            }
            at = here.end();
        }
        if let Some(why) = torn {
            if id != last_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "segment {} is damaged at byte {at} ({why}), and it is not the last one: \
                         not a torn write; run `jitgate audit verify`",
                        path.display()
                    ),
                ));
            }
            tracing::warn!(
                "audit segment {}: dropping a torn tail of {} bytes at byte {at} ({why}); \
                 nothing there had been acknowledged",
                path.display(),
                size - at
            );
            file.set_len(at)?;
            file.sync_all()?;
            return Ok(Scanned {
                last: Some((id, at)),
            });
        }
        last = Some((id, at));
    }
    if last.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the segment file holding the last indexed block ({}) is missing; run `jitgate audit verify`",
                from.map_or(0, |(s, _)| s)
            ),
        ));
    }
    Ok(Scanned { last })
}

/// Whether the bytes of `file` from `at` to `size` are all zeros (the preallocated tail).
fn only_zeros(file: &File, mut at: u64, size: u64) -> io::Result<bool> {
    let mut buf = [0u8; 64 << 10];
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Write `bytes` to segment file `id` as is (tests that build or damage segments by hand).
#[cfg(test)]
pub fn write_raw(segments: &Segments, id: u64, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(&segments.dir)?;
    std::fs::write(segments.path(id), bytes)
}
