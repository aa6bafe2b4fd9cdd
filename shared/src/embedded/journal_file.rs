//! The journal as an append-only file beside the database
//! (`<database>.journal`): each commit is one frame (length, CRC-32 of the
//! ops, CRC-32 of those two, ops) written with one `write`. Appending to a
//! file costs one copy into the page cache; the SQLite rows it replaces paid
//! for a B-tree insert, WAL frames and a checkpoint that wrote every byte a
//! second time.
//!
//! The file starts with a generation number. The snapshot in the database
//! names the generation of the journal that continues it; folding the
//! journal writes a snapshot naming the next generation, then starts a
//! journal of that generation (a new file renamed over the old one). A
//! crash between the two leaves an older journal, which the snapshot
//! already covers: it is ignored.
//!
//! A crash can tear only the last frame: its header or ops cut short, or
//! (a power loss after the file grew) zeros where they should be. That is
//! the one damage a read forgives. Anything else (a damaged header, a
//! damaged frame with frames after it, a zero-filled hole) is refused with
//! the byte offset, and nothing is cut off or folded. The header's own
//! checksum is what tells a damaged length from a torn tail: without it a
//! length past the end of the file looked torn wherever it was, and
//! everything after it was silently dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::journal::CorruptJournal;

/// This build's format: frames carry a checksum of their header.
const MAGIC: &[u8; 8] = b"SWJRNL02";
/// Earlier builds' format (length and CRC of the ops only): still read, and
/// replaced by a journal of this format when its owner opens it.
const MAGIC_V1: &[u8; 8] = b"SWJRNL01";
const HEADER_BYTES: u64 = 16;
const FRAME_HEADER_BYTES: usize = 12;
const FRAME_HEADER_BYTES_V1: usize = 8;

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
        let mut file =
            super::private_file(OpenOptions::new().create(true).truncate(true).write(true))
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
        let head = crc32fast::hash(&frame[..8]);
        frame[8..12].copy_from_slice(&head.to_le_bytes());
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
    /// end at `valid_end` (a torn last frame, if any, after it). `legacy`:
    /// written in an earlier build's format, so not to be appended to.
    Current {
        frames: usize,
        valid_end: u64,
        legacy: bool,
    },
}

/// Reads the journal at `path` if it continues the snapshot of
/// `generation`, handing each frame's ops to `each`. Only the last frame
/// may be torn (it ends the journal); any other damage is an error naming
/// its byte offset.
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
    let legacy = match &bytes[..8] {
        m if m == MAGIC => false,
        m if m == MAGIC_V1 => true,
        _ => return Err(JournalFileError::NotAJournal),
    };
    let found = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if found < generation {
        return Ok(Found::Stale);
    }
    if found > generation {
        return Ok(Found::Newer);
    }
    let mut at = HEADER_BYTES as usize;
    let mut frames = 0;
    loop {
        let frame = if legacy {
            next_frame_v1(&bytes, at)?
        } else {
            next_frame(&bytes, at)?
        };
        let Some((ops, end)) = frame else { break };
        each(ops)?;
        frames += 1;
        at = end;
    }
    Ok(Found::Current {
        frames,
        valid_end: at as u64,
        legacy,
    })
}

/// The frame at `at`: its ops and where it ends, or `None` at the end of the
/// journal (the end of the file, or a torn last frame).
fn next_frame(bytes: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, JournalFileError> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Ok(None); // nothing left, or a header cut short at the end
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let (len, crc, head) = (word(0) as usize, word(4), word(8));
    let damaged = |what| JournalFileError::Damaged {
        offset: at as u64,
        what,
    };
    if crc32fast::hash(&rest[..8]) != head {
        // Zeros to the end of the file: the file grew but the frame never
        // landed (a power loss). Anything else is damage.
        return if rest.iter().all(|&b| b == 0) {
            Ok(None)
        } else {
            Err(damaged("its header's checksum does not match"))
        };
    }
    let start = FRAME_HEADER_BYTES;
    let Some(ops) = rest.get(start..start + len) else {
        return Ok(None); // a whole header, its ops cut short by the end of the file
    };
    if crc32fast::hash(ops) != crc {
        return if start + len == rest.len() {
            Ok(None) // the last frame, its ops torn
        } else {
            Err(damaged("its checksum does not match, and frames follow it"))
        };
    }
    Ok(Some((ops, at + start + len)))
}

/// [`next_frame`] for an earlier build's journal, whose frames have no
/// header checksum: there a length past the end of the file can only be
/// read as a torn last frame.
fn next_frame_v1(bytes: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, JournalFileError> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEADER_BYTES_V1 {
        return Ok(None);
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let start = FRAME_HEADER_BYTES_V1;
    let Some(ops) = rest.get(start..start + len) else {
        return Ok(None);
    };
    if crc32fast::hash(ops) != crc {
        return if start + len == rest.len() {
            Ok(None)
        } else {
            Err(JournalFileError::Damaged {
                offset: at as u64,
                what: "its checksum does not match, and frames follow it",
            })
        };
    }
    Ok(Some((ops, at + start + len)))
}

#[derive(Debug, thiserror::Error)]
pub enum JournalFileError {
    #[error("reading the journal file: {0}")]
    Io(#[from] io::Error),
    #[error("the journal file does not start with Switchyard's journal header")]
    NotAJournal,
    #[error("the journal file's frame at byte {offset} is damaged ({what}); refusing to read past it, and nothing was changed: restore the data dir from a backup, or move the journal aside to start from the last snapshot")]
    Damaged { offset: u64, what: &'static str },
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

    /// A journal of three frames; returns its path and each frame's offset.
    fn three_frames(dir: &Path) -> (PathBuf, [usize; 3]) {
        let path = dir.join("s.db.journal");
        drop(write_frames(&path, 1, &[b"first", b"second", b"third"]));
        let first = HEADER_BYTES as usize;
        let second = first + FRAME_HEADER_BYTES + 5;
        let third = second + FRAME_HEADER_BYTES + 6;
        (path, [first, second, third])
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = std::fs::read(path).unwrap();
        f(&mut bytes);
        std::fs::write(path, &bytes).unwrap();
        bytes
    }

    fn damaged_at(path: &Path) -> u64 {
        match read(path, 1, |_| Ok(())) {
            Err(JournalFileError::Damaged { offset, .. }) => offset,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn frames_read_back_in_order_and_generations_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        assert_eq!(collect(&path, 0).0, Found::Missing);
        write_frames(&path, 3, &[b"one", b"", b"three"]);
        let (found, seen) = collect(&path, 3);
        assert!(matches!(
            found,
            Found::Current {
                frames: 3,
                legacy: false,
                ..
            }
        ));
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
        // Cut in the ops, in the header, and just after the header.
        for cut in [
            3,
            12,
            FRAME_HEADER_BYTES as u64 + 2,
            10 + FRAME_HEADER_BYTES as u64,
        ] {
            let copy = dir.path().join(format!("cut{cut}.journal"));
            std::fs::copy(&path, &copy).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&copy)
                .unwrap()
                .set_len(full - cut)
                .unwrap();
            let (found, seen) = collect(&copy, 1);
            assert!(
                matches!(found, Found::Current { frames: 1, .. }),
                "cut {cut}: {found:?}"
            );
            assert_eq!(seen, vec![b"whole".to_vec()], "cut {cut}");
        }
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let (found, _) = collect(&path, 1);
        let Found::Current { valid_end, .. } = found else {
            panic!("{found:?}")
        };
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
    fn a_zero_filled_or_garbled_last_frame_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let (path, [_, _, third]) = three_frames(dir.path());
        // A power loss after the file grew: zeros where the last frame goes.
        let bytes = edit(&path, |b| b[third..].fill(0));
        let (found, seen) = collect(&path, 1);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            found,
            Found::Current {
                frames: 2,
                valid_end: third as u64,
                legacy: false
            }
        );
        // Zeros past the end of the last whole frame, too.
        edit(&path, |b| b.extend_from_slice(&[0; 100]));
        assert_eq!(collect(&path, 1).1.len(), 2);
        // Its ops garbled, header whole: torn too, as nothing follows.
        std::fs::write(&path, &bytes).unwrap();
        let (path, [_, _, third]) = three_frames(dir.path());
        edit(&path, |b| b[third + FRAME_HEADER_BYTES] ^= 0xff);
        assert_eq!(collect(&path, 1).1.len(), 2);
    }

    #[test]
    fn a_damaged_length_is_refused_with_its_offset_at_the_start_middle_and_end() {
        for (which, name) in [(0, "start"), (1, "middle"), (2, "end")] {
            let dir = tempfile::tempdir().unwrap();
            let (path, offsets) = three_frames(dir.path());
            let at = offsets[which];
            let before = edit(&path, |b| {
                b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes())
            });
            assert_eq!(damaged_at(&path), at as u64, "{name}");
            // Nothing was changed by the refusal.
            assert_eq!(std::fs::read(&path).unwrap(), before, "{name}");
            // A small wrong length (still inside the file) is refused too.
            edit(&path, |b| {
                b[at..at + 4].copy_from_slice(&1u32.to_le_bytes())
            });
            assert_eq!(damaged_at(&path), at as u64, "{name}, small length");
        }
    }

    #[test]
    fn a_zero_filled_hole_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, [_, second, third]) = three_frames(dir.path());
        // A lost page in the middle: the second frame reads as zeros.
        edit(&path, |b| b[second..third].fill(0));
        assert_eq!(damaged_at(&path), second as u64);
        // Only its ops zeroed: the checksum catches it, frames follow.
        let (path, [_, second, third]) = three_frames(dir.path());
        edit(&path, |b| b[second + FRAME_HEADER_BYTES..third].fill(0));
        assert_eq!(damaged_at(&path), second as u64);
    }

    #[test]
    fn damage_before_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        drop(write_frames(&path, 1, &[b"first", b"second"]));
        edit(&path, |b| {
            b[HEADER_BYTES as usize + FRAME_HEADER_BYTES] ^= 0xff
        });
        assert_eq!(damaged_at(&path), HEADER_BYTES);
        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(matches!(
            read(&path, 1, |_| Ok(())),
            Err(JournalFileError::NotAJournal)
        ));
    }

    #[test]
    fn an_earlier_builds_journal_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&1u64.to_le_bytes());
        for ops in [&b"one"[..], b"two"] {
            bytes.extend_from_slice(&(ops.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(ops).to_le_bytes());
            bytes.extend_from_slice(ops);
        }
        std::fs::write(&path, &bytes).unwrap();
        let (found, seen) = collect(&path, 1);
        assert!(matches!(
            found,
            Found::Current {
                frames: 2,
                legacy: true,
                ..
            }
        ));
        assert_eq!(seen, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.journal");
        drop(write_frames(&path, 1, &[b"x"]));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
