//! The journal as an append-only file beside the database
//! (`<database>.journal`): each commit is one frame (length, CRC-32, ops)
//! written with one `write`. Appending to a file costs one copy into the
//! page cache; the SQLite rows it replaces paid for a B-tree insert, WAL
//! frames and a checkpoint that wrote every byte a second time.
//!
//! The file starts with a generation number. The snapshot in the database
//! names the generation of the journal that continues it; folding the
//! journal writes a snapshot naming the next generation, then starts a
//! journal of that generation (a new file renamed over the old one). A
//! crash between the two leaves an older journal, which the snapshot
//! already covers: it is ignored.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::journal::CorruptJournal;

const MAGIC: &[u8; 8] = b"SWJRNL01";
const HEADER_BYTES: u64 = 16;
const FRAME_HEADER_BYTES: usize = 8;

/// The journal file that goes with the database at `db`.
pub(super) fn path_for(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// An open journal, appended to by the commit thread only.
#[derive(Debug)]
pub(super) struct JournalWriter {
    file: File,
    /// Bytes past the header: when to fold.
    pub(super) bytes: u64,
}

impl JournalWriter {
    /// Starts an empty journal of `generation` at `path`, replacing any
    /// there: written beside it and renamed over it, so the old one stays
    /// whole until the new one is.
    pub(super) fn create(path: &Path, generation: u64) -> io::Result<Self> {
        let mut temp = path.as_os_str().to_owned();
        temp.push(".new");
        let temp = PathBuf::from(temp);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&temp)?;
        let mut header = [0u8; HEADER_BYTES as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&generation.to_le_bytes());
        file.write_all(&header)?;
        file.sync_data()?;
        std::fs::rename(&temp, path)?;
        // The rename on disk too: else a power loss could bring back the
        // old journal under frames the sync thread already flushed.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(JournalWriter { file, bytes: 0 })
    }

    /// Continues the journal at `path` after its last whole frame, cutting
    /// off a frame a crash left half written.
    pub(super) fn resume(path: &Path, valid_end: u64) -> io::Result<Self> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.set_len(valid_end)?;
        file.seek(SeekFrom::End(0))?;
        Ok(JournalWriter {
            file,
            bytes: valid_end.saturating_sub(HEADER_BYTES),
        })
    }

    /// Appends one commit. `frame` must come from [`JournalWriter::frame`].
    pub(super) fn append(&mut self, frame: &mut [u8]) -> io::Result<()> {
        let len = (frame.len() - FRAME_HEADER_BYTES) as u32;
        let crc = crc32fast::hash(&frame[FRAME_HEADER_BYTES..]);
        frame[..4].copy_from_slice(&len.to_le_bytes());
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all(frame)?;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// An empty frame: the ops are encoded after its header.
    pub(super) fn frame() -> Vec<u8> {
        vec![0u8; FRAME_HEADER_BYTES]
    }

    /// Empties `frame` for the next commit's ops, keeping its buffer.
    pub(super) fn clear_frame(frame: &mut Vec<u8>) {
        frame.truncate(FRAME_HEADER_BYTES);
    }

    /// Whether `frame` holds no ops yet.
    pub(super) fn frame_is_empty(frame: &[u8]) -> bool {
        frame.len() <= FRAME_HEADER_BYTES
    }

    /// A handle for flushing the file to disk from another thread.
    pub(super) fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// What reading a journal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No journal file.
    Missing,
    /// A journal of an earlier generation: the snapshot covers it.
    Stale,
    /// A journal of a later generation than the snapshot read: a fold
    /// happened meanwhile (a read-only open reads again).
    Newer,
    /// The journal continuing the snapshot: `frames` replayed, whole frames
    /// end at `valid_end` (a torn last frame, if any, after it).
    Current { frames: usize, valid_end: u64 },
}

/// Reads the journal at `path` if it continues the snapshot of
/// `generation`, handing each frame's ops to `each`. A last frame cut
/// short (by a crash while it was written) ends the journal; a damaged one
/// before the end is an error.
pub(super) fn read(
    path: &Path,
    generation: u64,
    mut each: impl FnMut(&[u8]) -> Result<(), CorruptJournal>,
) -> Result<Found, JournalFileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    if bytes.len() < HEADER_BYTES as usize {
        // Created but its header never landed: the rename comes after it, so
        // only a file from before renames could look like this.
        return Ok(Found::Stale);
    }
    if &bytes[..8] != MAGIC {
        return Err(JournalFileError::NotAJournal);
    }
    let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if found < generation {
        return Ok(Found::Stale);
    }
    if found > generation {
        return Ok(Found::Newer);
    }
    let mut at = HEADER_BYTES as usize;
    let mut frames = 0;
    while bytes.len() - at >= FRAME_HEADER_BYTES {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let start = at + FRAME_HEADER_BYTES;
        let Some(ops) = bytes.get(start..start + len) else {
            break; // torn: the crash came mid-write
        };
        if crc32fast::hash(ops) != crc {
            if start + len == bytes.len() {
                break; // torn last frame
            }
            return Err(JournalFileError::BadChecksum { offset: at as u64 });
        }
        each(ops)?;
        frames += 1;
        at = start + len;
    }
    Ok(Found::Current {
        frames,
        valid_end: at as u64,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum JournalFileError {
    #[error("reading the journal file: {0}")]
    Io(#[from] io::Error),
    #[error("the journal file does not start with Switchyard's journal header")]
    NotAJournal,
    #[error("the journal file's frame at byte {offset} is damaged (checksum mismatch)")]
    BadChecksum { offset: u64 },
    #[error(transparent)]
    Ops(#[from] CorruptJournal),
    #[error("the journal file is of a later generation than the database's snapshot (was the database file replaced?)")]
    AheadOfSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_frames(path: &Path, generation: u64, frames: &[&[u8]]) -> JournalWriter {
        let mut w = JournalWriter::create(path, generation).unwrap();
        for ops in frames {
            let mut f = JournalWriter::frame();
            f.extend_from_slice(ops);
            w.append(&mut f).unwrap();
        }
        w
    }

    fn collect(path: &Path, generation: u64) -> (Found, Vec<Vec<u8>>) {
        let mut seen = Vec::new();
        let found = read(path, generation, |ops| {
            seen.push(ops.to_vec());
            Ok(())
        })
        .unwrap();
        (found, seen)
    }

    #[test]
    fn frames_read_back_in_order_and_generations_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        assert_eq!(collect(&path, 0).0, Found::Missing);
        write_frames(&path, 3, &[b"one", b"", b"three"]);
        let (found, seen) = collect(&path, 3);
        assert!(matches!(found, Found::Current { frames: 3, .. }));
        assert_eq!(seen, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(collect(&path, 4).0, Found::Stale);
        assert_eq!(collect(&path, 2).0, Found::Newer);
    }

    #[test]
    fn a_torn_last_frame_ends_the_journal_and_resume_cuts_it_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        drop(write_frames(&path, 1, &[b"whole", b"torn-frame"]));
        let full = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let (found, seen) = collect(&path, 1);
        let Found::Current { frames, valid_end } = found else {
            panic!("{found:?}")
        };
        assert_eq!((frames, seen), (1, vec![b"whole".to_vec()]));
        let mut w = JournalWriter::resume(&path, valid_end).unwrap();
        let mut f = JournalWriter::frame();
        f.extend_from_slice(b"after");
        w.append(&mut f).unwrap();
        assert_eq!(
            collect(&path, 1).1,
            vec![b"whole".to_vec(), b"after".to_vec()]
        );
    }

    #[test]
    fn damage_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        drop(write_frames(&path, 1, &[b"first", b"second"]));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER_BYTES as usize + FRAME_HEADER_BYTES] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = read(&path, 1, |_| Ok(())).unwrap_err();
        assert!(
            matches!(err, JournalFileError::BadChecksum { offset: 16 }),
            "{err}"
        );
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(matches!(
            read(&path, 1, |_| Ok(())),
            Err(JournalFileError::NotAJournal)
        ));
    }
}
