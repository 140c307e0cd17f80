//! Properties of a journal segment as the reader sees it after a crash or damage: for any
//! entries, a segment cut at any byte reads back as exactly the entries wholly before the
//! cut (the torn tail counted as lost), and a damaged byte never yields a wrong entry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::DateTime;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::reader::{Progress, SegmentReader};
use super::{segment_path, Admitted, Entry};
use crate::store::{CostRecord, UsageSource};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text as clients and providers may send it: any Unicode, and often the characters
/// JSON has to escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        vec(select(&["\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{2028}", "é", "𝄞", "gpt-4o", " "][..]), 0..12)
            .prop_map(|parts| parts.concat()),
    ]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any instant from year 1 to 9999, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<chrono::Utc>> {
    (-62_135_596_800i64..253_402_300_799, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

fn admitted() -> impl Strategy<Value = Entry> {
    (
        (uuid(), instant(), uuid(), uuid(), uuid(), option::of(uuid())),
        (text(), text(), option::of(text()), any::<u64>(), any::<bool>()),
    )
        .prop_map(|((request_id, created_at, org, project, user, key), rest)| {
            let (provider, endpoint, model, request_bytes, streamed) = rest;
            Entry::Admitted(Admitted {
                request_id,
                created_at,
                organization_id: org,
                project_id: project,
                user_id: user,
                api_key_id: key,
                provider,
                endpoint,
                model,
                request_bytes,
                streamed,
            })
        })
}

fn settled() -> impl Strategy<Value = Entry> {
    let ids = (uuid(), uuid(), instant(), uuid(), uuid(), uuid(), option::of(uuid()));
    let texts = (text(), option::of(text()), text(), option::of(text()), option::of(text()));
    let counts = vec(option::of(any::<u64>()), 9);
    let rest = (
        (any::<i64>(), 0u32..=28),
        any::<u16>(),
        any::<u64>(),
        any::<bool>(),
        select(&[UsageSource::Reported, UsageSource::Partial, UsageSource::Estimated, UsageSource::None][..]),
        any::<bool>(),
    );
    (ids, texts, counts, rest).prop_map(|(ids, texts, c, rest)| {
        let (id, request_id, created_at, organization_id, project_id, user_id, api_key_id) = ids;
        let (provider, model, endpoint, service_tier, inference_geo) = texts;
        let ((mantissa, scale), status_code, latency_ms, streamed, usage_source, priced) = rest;
        Entry::Settled(Box::new(CostRecord {
            id,
            request_id,
            created_at,
            organization_id,
            project_id,
            user_id,
            api_key_id,
            provider,
            model,
            endpoint,
            input_tokens: c[0],
            cached_input_tokens: c[1],
            cache_write_tokens: c[2],
            output_tokens: c[3],
            reasoning_tokens: c[4],
            cost_usd: Decimal::new(mantissa, scale),
            status_code,
            latency_ms,
            streamed,
            usage_source,
            priced,
            service_tier,
            inference_geo,
            audio_input_tokens: c[5],
            audio_output_tokens: c[6],
            web_search_requests: c[7],
            web_fetch_requests: c[8],
        }))
    })
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    vec(prop_oneof![admitted(), settled()], 0..8)
}

/// The segment bytes of `entries` and where each entry's frame ends.
fn segment(entries: &[Entry]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for e in entries {
        e.encode(&mut bytes).unwrap();
        ends.push(bytes.len());
    }
    (bytes, ends)
}

/// Reads segment 0 of a directory holding `bytes`, `batch` settled entries per call.
fn read(bytes: &[u8], whole: Option<u64>, batch: usize) -> (Vec<Entry>, Progress, u64) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(segment_path(dir.path(), 0), bytes).unwrap();
    let mut reader = SegmentReader::open(dir.path(), 0).unwrap();
    let mut out = Vec::new();
    loop {
        match reader.next(whole, &mut out, batch).unwrap() {
            Progress::More => {}
            end => return (out, end, reader.skipped),
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_segment_cut_at_any_byte_reads_back_the_entries_before_the_cut(
        entries in entries(),
        cut in any::<Index>(),
        batch in 1usize..4,
    ) {
        let (bytes, ends) = segment(&entries);
        let cut = cut.index(bytes.len() + 1);
        let whole = ends.iter().filter(|end| **end <= cut).count();
        let torn = cut - if whole == 0 { 0 } else { ends[whole - 1] };
        let (got, end, skipped) = read(&bytes[..cut], None, batch);
        prop_assert_eq!(&got[..], &entries[..whole]);
        prop_assert_eq!(end, Progress::End { bytes: cut as u64, lost: torn as u64 });
        prop_assert_eq!(skipped, 0);
        // Read live, up to the cut: the same entries, and it waits for the rest.
        let (got, end, _) = read(&bytes, Some(cut as u64), batch);
        prop_assert_eq!(&got[..], &entries[..whole]);
        prop_assert_eq!(end, Progress::CaughtUp);
    }

    #[test]
    fn a_damaged_byte_never_yields_a_wrong_entry(
        entries in entries().prop_filter("something to damage", |e| !e.is_empty()),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let (mut bytes, ends) = segment(&entries);
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        let (got, end, skipped) = read(&bytes, None, 2);
        // Every entry before the damage survives; the damaged one and those after it may
        // be lost, but nothing else comes back.
        let intact = ends.iter().filter(|end| **end <= at).count();
        prop_assert!(got.len() >= intact, "lost entries before the damage");
        prop_assert!(got.len() <= intact, "read an entry through the damage");
        prop_assert_eq!(&got[..], &entries[..intact]);
        prop_assert_eq!(skipped, 0);
        let read_to_end = matches!(end, Progress::End { bytes: b, .. } if b == bytes.len() as u64);
        prop_assert!(read_to_end, "{:?}", end);
    }
}

#[test]
fn an_oversized_entry_is_refused_and_the_entries_after_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let settings = super::JournalSettings {
        dir: dir.path().to_path_buf(),
        max_bytes: 1 << 30,
        fsync: std::time::Duration::ZERO,
    };
    let journal = super::Journal::open(&settings, 0, 0).unwrap();
    let entry = |model: String| {
        Entry::Admitted(Admitted {
            request_id: Uuid::from_u128(model.len() as u128),
            created_at: DateTime::UNIX_EPOCH,
            organization_id: Uuid::nil(),
            project_id: Uuid::nil(),
            user_id: Uuid::nil(),
            api_key_id: None,
            provider: "openai".into(),
            endpoint: "/v1/chat/completions".into(),
            model: Some(model),
            request_bytes: 0,
            streamed: false,
        })
    };
    journal.append(&entry("before".into())).unwrap();
    let oversized = journal.append(&entry("m".repeat(super::frame::MAX_PAYLOAD)));
    assert!(matches!(oversized, Err(super::JournalError::Encode(super::frame::EncodeError::TooLarge(_)))));
    journal.append(&entry("after".into())).unwrap();
    journal.close().unwrap();
    let bytes = std::fs::read(segment_path(dir.path(), 0)).unwrap();
    let (got, end, _) = read(&bytes, None, 10);
    assert_eq!(got, vec![entry("before".into()), entry("after".into())]);
    assert_eq!(end, Progress::End { bytes: bytes.len() as u64, lost: 0 });
}
