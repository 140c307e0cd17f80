//! Reads one journal segment back, entry by entry, in the order they were appended. The
//! live segment is read only up to the bytes the appender has finished; a sealed one to
//! its end, where a torn last entry (a crash mid-write) or damage ends it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::frame::{self, Entry, Parsed};
use super::{segment_path, JournalError};

/// Bytes read from the file at a time.
const CHUNK: usize = 1 << 20;

/// Where a read of a segment stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// `max_settled` settled entries were read; there may be more.
    More,
    /// Everything whole so far was read; the segment is still being appended to.
    CaughtUp,
    /// The sealed segment is read to its end: `bytes` long, `lost` bytes of it unreadable.
    End { bytes: u64, lost: u64 },
    /// The live segment holds bytes that are not an entry: seal it, then read on.
    Damaged,
}

/// A reader positioned in one segment.
pub struct SegmentReader {
    pub index: u64,
    file: File,
    /// Bytes taken from the file so far.
    read: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    pos: usize,
    /// Entries in this segment that were skipped: whole frames this version cannot read.
    pub skipped: u64,
}

impl SegmentReader {
    /// Opens segment `index` of `dir` at its start.
    pub fn open(dir: &Path, index: u64) -> Result<SegmentReader, JournalError> {
        let path = segment_path(dir, index);
        let file = File::open(&path)
            .map_err(|source| JournalError::Io { path: path.display().to_string(), source })?;
        Ok(SegmentReader { index, file, read: 0, buf: Vec::new(), pos: 0, skipped: 0 })
    }

    /// Appends the next entries to `out`, stopping after `max_settled` settled ones.
    /// `whole` is how many bytes of the file hold whole entries (the live segment), or
    /// `None` for a sealed segment, read to its end.
    pub fn next(
        &mut self,
        whole: Option<u64>,
        out: &mut Vec<Entry>,
        max_settled: usize,
    ) -> Result<Progress, JournalError> {
        let mut settled = 0;
        loop {
            match frame::parse(&self.buf[self.pos..]) {
                Parsed::Entry { entry, len } => {
                    self.pos += len;
                    settled += usize::from(matches!(entry, Entry::Settled(_)));
                    out.push(entry);
                    if settled >= max_settled {
                        return Ok(Progress::More);
                    }
                }
                Parsed::Unreadable { len, reason } => {
                    tracing::error!(segment = self.index, %reason, "journal entry skipped: this version cannot read it");
                    self.skipped += 1;
                    self.pos += len;
                }
                Parsed::Incomplete => {
                    if self.fill(whole)? == 0 {
                        return Ok(match whole {
                            Some(_) => Progress::CaughtUp,
                            None => self.end(),
                        });
                    }
                }
                Parsed::Corrupt(why) => {
                    if whole.is_some() {
                        // Only whole entries are read from the live segment, so this is
                        // damage on disk: the ledger seals the segment and reads on.
                        tracing::error!(segment = self.index, why, "live journal segment damaged");
                        return Ok(Progress::Damaged);
                    }
                    let unparsed = (self.buf.len() - self.pos) as u64;
                    let drained = self.drain_file()?;
                    self.read += drained;
                    let lost = unparsed + drained;
                    tracing::error!(
                        segment = self.index,
                        why,
                        lost,
                        "journal segment ends in damage; the rest of it is skipped"
                    );
                    return Ok(Progress::End { bytes: self.read, lost });
                }
            }
        }
    }

    /// The sealed segment's end: any bytes left over are a torn last entry.
    fn end(&mut self) -> Progress {
        let lost = self.lost();
        if lost > 0 {
            tracing::warn!(
                segment = self.index,
                lost,
                "journal segment ends in a torn entry (a crash mid-append)"
            );
        }
        Progress::End { bytes: self.read, lost }
    }

    fn lost(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// Reads more of the file into the buffer; returns how many bytes came.
    fn fill(&mut self, whole: Option<u64>) -> Result<usize, JournalError> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let want = match whole {
            Some(w) => (w.saturating_sub(self.read) as usize).min(CHUNK),
            None => CHUNK,
        };
        if want == 0 {
            return Ok(0);
        }
        let start = self.buf.len();
        self.buf.resize(start + want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read(&mut self.buf[start + got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    self.buf.truncate(start);
                    return Err(JournalError::Io { path: format!("segment {}", self.index), source });
                }
            }
        }
        self.buf.truncate(start + got);
        self.read += got as u64;
        Ok(got)
    }

    /// Reads the rest of the file without parsing it; returns the bytes read.
    fn drain_file(&mut self) -> Result<u64, JournalError> {
        let mut sink = Vec::new();
        self.file
            .read_to_end(&mut sink)
            .map(|n| n as u64)
            .map_err(|source| JournalError::Io { path: format!("segment {}", self.index), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame::Admitted;

    fn entry(n: u64) -> Entry {
        Entry::Admitted(Admitted {
            request_id: uuid::Uuid::from_u128(u128::from(n)),
            created_at: chrono::DateTime::UNIX_EPOCH,
            organization_id: uuid::Uuid::nil(),
            project_id: uuid::Uuid::nil(),
            user_id: uuid::Uuid::nil(),
            api_key_id: None,
            provider: "openai".into(),
            endpoint: "/v1/chat/completions".into(),
            // Entries of different lengths, some long enough to span reads.
            model: Some("m".repeat((n as usize * 37) % 300)),
            request_bytes: n,
            streamed: n.is_multiple_of(2),
        })
    }

    fn read_all(dir: &Path) -> (Vec<Entry>, Progress) {
        let mut reader = SegmentReader::open(dir, 0).unwrap();
        let mut out = Vec::new();
        loop {
            match reader.next(None, &mut out, 3).unwrap() {
                Progress::More => {}
                end => return (out, end),
            }
        }
    }

    #[test]
    fn a_segment_cut_at_any_byte_loses_at_most_the_torn_entry() {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for n in 0..12 {
            entry(n).encode(&mut bytes).unwrap();
            ends.push(bytes.len());
        }
        let dir = tempfile::tempdir().unwrap();
        for cut in 0..=bytes.len() {
            std::fs::write(segment_path(dir.path(), 0), &bytes[..cut]).unwrap();
            let (got, end) = read_all(dir.path());
            let whole = ends.iter().filter(|e| **e <= cut).count();
            assert_eq!(got.len(), whole, "cut at {cut}");
            for (n, e) in got.iter().enumerate() {
                assert_eq!(*e, entry(n as u64));
            }
            let last_whole_end = if whole == 0 { 0 } else { ends[whole - 1] };
            let torn = cut - last_whole_end;
            assert_eq!(end, Progress::End { bytes: cut as u64, lost: torn as u64 }, "cut at {cut}");
        }
    }

    #[test]
    fn damage_in_the_middle_keeps_what_came_before_it() {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for n in 0..6 {
            entry(n).encode(&mut bytes).unwrap();
            ends.push(bytes.len());
        }
        bytes[ends[2] + 12] ^= 0x40;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
        let (got, end) = read_all(dir.path());
        assert_eq!(got, (0..3).map(entry).collect::<Vec<_>>());
        assert_eq!(end, Progress::End { bytes: bytes.len() as u64, lost: (bytes.len() - ends[2]) as u64 });
    }

    #[test]
    fn the_live_segment_is_read_only_up_to_its_whole_entries() {
        let mut bytes = Vec::new();
        entry(1).encode(&mut bytes).unwrap();
        let first = bytes.len() as u64;
        entry(2).encode(&mut bytes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(segment_path(dir.path(), 0), &bytes).unwrap();
        let mut reader = SegmentReader::open(dir.path(), 0).unwrap();
        let mut out = Vec::new();
        assert_eq!(reader.next(Some(first), &mut out, 10).unwrap(), Progress::CaughtUp);
        assert_eq!(out, vec![entry(1)]);
        assert_eq!(reader.next(Some(bytes.len() as u64), &mut out, 10).unwrap(), Progress::CaughtUp);
        assert_eq!(out, vec![entry(1), entry(2)]);
    }
}
