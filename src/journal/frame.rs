//! The journal's entries and their bytes on disk: each entry is one frame, a header
//! (payload length, CRC-32 of kind and payload, kind) followed by a JSON payload. Parsing
//! is incremental: "not enough bytes yet" is a state, not an error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::CostRecord;

/// Bytes before the payload: length (u32 LE), CRC-32 (u32 LE), kind (u8).
pub const HEADER: usize = 9;
/// Longest payload a frame may declare: a cost record is a few hundred bytes, so a larger
/// length can only be a torn or damaged header.
pub const MAX_PAYLOAD: usize = 1 << 20;

const ADMITTED: u8 = 1;
const SETTLED: u8 = 2;

/// What the journal knows of a metered request when it is admitted, enough to record it
/// as `estimated` if the process dies before it settles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Admitted {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub user_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub provider: String,
    pub endpoint: String,
    pub model: Option<String>,
    /// Bytes of the request body as sent upstream.
    pub request_bytes: u64,
    pub streamed: bool,
}

/// Why an entry could not be made into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("journal entry could not be encoded: {0}")]
    Json(#[from] serde_json::Error),
    /// Its payload is longer than [`MAX_PAYLOAD`]: [`parse`] would take the frame for a
    /// damaged header and lose every entry after it, so it is never written.
    #[error("journal entry of {0} bytes is over the {MAX_PAYLOAD}-byte limit of a frame")]
    TooLarge(usize),
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// The request was admitted and is about to be sent upstream.
    Admitted(Admitted),
    /// The request settled: its cost record, final.
    Settled(Box<CostRecord>),
}

impl Entry {
    /// Appends this entry's frame to `out`; on error `out` is left as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        let written = match self {
            Entry::Admitted(a) => serde_json::to_writer(&mut *out, a).map(|()| ADMITTED),
            Entry::Settled(r) => serde_json::to_writer(&mut *out, r).map(|()| SETTLED),
        };
        let payload_len = out.len() - start - HEADER;
        let kind = match written {
            Ok(_) if payload_len > MAX_PAYLOAD => Err(EncodeError::TooLarge(payload_len)),
            Ok(kind) => Ok(kind),
            Err(e) => Err(EncodeError::Json(e)),
        };
        let kind = kind.inspect_err(|_| out.truncate(start))?;
        out[start + 8] = kind;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&out[start + 8..]);
        out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
        Ok(())
    }
}

/// What the bytes at the start of a buffer hold.
#[derive(Debug)]
pub enum Parsed {
    /// A whole, intact entry that took `len` bytes.
    Entry { entry: Entry, len: usize },
    /// A whole frame whose checksum holds but whose payload this version cannot read;
    /// skipping its `len` bytes keeps the frames after it.
    Unreadable { len: usize, reason: String },
    /// The frame is not all there yet (or was torn off at the end of a file).
    Incomplete,
    /// The bytes are not a frame: a damaged header or a checksum that does not match.
    Corrupt(&'static str),
}

/// Parses the frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
    let payload_len = word(0) as usize;
    if payload_len > MAX_PAYLOAD {
        return Parsed::Corrupt("declared length out of range");
    }
    let len = HEADER + payload_len;
    if buf.len() < len {
        return Parsed::Incomplete;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[8..len]);
    if crc.finalize() != word(4) {
        return Parsed::Corrupt("checksum mismatch");
    }
    let payload = &buf[HEADER..len];
    let entry = match buf[8] {
        ADMITTED => serde_json::from_slice(payload).map(Entry::Admitted),
        SETTLED => serde_json::from_slice(payload).map(|r| Entry::Settled(Box::new(r))),
        other => return Parsed::Unreadable { len, reason: format!("unknown entry kind {other}") },
    };
    match entry {
        Ok(entry) => Parsed::Entry { entry, len },
        Err(e) => Parsed::Unreadable { len, reason: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(n: u8) -> Entry {
        Entry::Admitted(Admitted {
            request_id: Uuid::from_bytes([n; 16]),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            organization_id: Uuid::from_bytes([1; 16]),
            project_id: Uuid::from_bytes([2; 16]),
            user_id: Uuid::from_bytes([3; 16]),
            api_key_id: None,
            provider: "openai".into(),
            endpoint: "/v1/chat/completions".into(),
            model: Some("gpt-4o \"quoted\" \n".into()),
            request_bytes: 1234,
            streamed: true,
        })
    }

    #[test]
    fn a_frame_round_trips_and_every_shorter_prefix_is_incomplete() {
        let mut buf = Vec::new();
        admitted(7).encode(&mut buf).unwrap();
        match parse(&buf) {
            Parsed::Entry { entry, len } => {
                assert_eq!(entry, admitted(7));
                assert_eq!(len, buf.len());
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..buf.len() {
            assert!(matches!(parse(&buf[..cut]), Parsed::Incomplete), "cut at {cut}");
        }
    }

    #[test]
    fn an_entry_over_the_frame_limit_is_refused_not_written_as_damage() {
        // The model is the client's to choose: written, this frame would read as a damaged
        // header and take every entry after it in the segment down with it.
        let Entry::Admitted(mut a) = admitted(1) else { unreachable!() };
        a.model = Some("m".repeat(MAX_PAYLOAD));
        let mut buf = b"before".to_vec();
        match Entry::Admitted(a).encode(&mut buf) {
            Err(EncodeError::TooLarge(len)) => assert!(len > MAX_PAYLOAD),
            other => panic!("an oversized entry was encoded: {other:?}"),
        }
        assert_eq!(buf, b"before", "nothing of the refused entry is left behind");
        let Entry::Admitted(mut a) = admitted(2) else { unreachable!() };
        a.model = Some("m".repeat(MAX_PAYLOAD - 1024));
        Entry::Admitted(a).encode(&mut buf).unwrap();
        assert!(matches!(parse(&buf[6..]), Parsed::Entry { .. }), "an entry just under the limit reads back");
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let mut buf = Vec::new();
        admitted(9).encode(&mut buf).unwrap();
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                match parse(&damaged) {
                    Parsed::Entry { entry, .. } => panic!("byte {byte} bit {bit} accepted: {entry:?}"),
                    Parsed::Corrupt(_) | Parsed::Incomplete => {}
                    Parsed::Unreadable { .. } => panic!("byte {byte} bit {bit} passed the checksum"),
                }
            }
        }
    }
}
