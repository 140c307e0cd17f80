//! The journal reader over any segment file: it never panics, always reaches the end of a
//! sealed segment, reads a live one as a prefix of the same entries, and every entry it
//! returns encodes and parses back to itself.
//! Input: [mode] [rest...]. Mode bit 0 clear: `rest` is the segment as is. Set: `rest` is
//! split at NUL bytes into frames, each `[kind] [JSON payload...]`, written with a correct
//! header and checksum (so the payload parsers are reached); bit 1 then cuts the segment
//! at (mode >> 2)/64 of its length. Bits 2-3 pick how many settled entries a read takes.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::journal::frame::{self, Entry, Parsed, HEADER};
use tollgate::journal::reader::{Progress, SegmentReader};
use tollgate::journal::segment_path;
use tollgate_fuzz::take;

/// One directory per fuzzing process; the segment file in it is rewritten every run.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tollgate-fuzz-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    })
}

fn framed(rest: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut frames = 0;
    for piece in rest.split(|b| *b == 0) {
        let Some((kind, payload)) = piece.split_first() else { continue };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[*kind]);
        crc.update(payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.push(*kind);
        out.extend_from_slice(payload);
        frames += 1;
    }
    (out, frames)
}

fn read(whole: Option<u64>, batch: usize) -> (Vec<Entry>, Progress, u64) {
    let mut reader = SegmentReader::open(dir(), 0).expect("segment opens");
    let mut out = Vec::new();
    loop {
        match reader.next(whole, &mut out, batch).expect("segment reads") {
            Progress::More => {}
            end => return (out, end, reader.skipped),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [mode] = take::<1>(&mut data);
    let (mut segment, frames) = if mode & 1 == 0 {
        (data.to_vec(), None)
    } else {
        let (segment, frames) = framed(data);
        (segment, Some(frames))
    };
    let cut = frames.is_some() && mode & 2 != 0;
    if cut {
        let keep = segment.len() * usize::from(mode >> 2) / 64;
        segment.truncate(keep);
    }
    std::fs::write(segment_path(dir(), 0), &segment).expect("segment written");
    let batch = 1 + usize::from(mode >> 2 & 3);

    let (sealed, end, skipped) = read(None, batch);
    let Progress::End { bytes, lost } = end else { panic!("a sealed segment ended in {end:?}") };
    assert_eq!(bytes, segment.len() as u64, "the sealed segment was not read to its end");
    assert!(lost <= bytes);
    if let (Some(frames), false) = (frames, cut) {
        assert_eq!(lost, 0, "well-formed frames were lost");
        assert_eq!(sealed.len() as u64 + skipped, frames as u64, "frames went missing");
    }

    let (live, progress, _) = read(Some(segment.len() as u64), batch);
    assert!(live.len() <= sealed.len() && live[..] == sealed[..live.len()], "live and sealed reads differ");
    if progress != Progress::Damaged {
        assert_eq!(live, sealed, "a live read stopped early without damage");
    }

    for entry in &sealed {
        let mut bytes = Vec::new();
        entry.encode(&mut bytes).expect("an entry read back encodes");
        match frame::parse(&bytes) {
            Parsed::Entry { entry: again, len } => {
                assert_eq!(&again, entry, "an entry did not survive a round trip");
                assert_eq!(len, bytes.len());
                assert!(len >= HEADER);
            }
            other => panic!("a re-encoded entry parsed as {other:?}"),
        }
    }
});
