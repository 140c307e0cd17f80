//! Properties of [`Meter`] under re-chunking: any partition of any corpus body (plain, or
//! compressed and watched through [`ObservedBody`]) and of arbitrary SSE-shaped bytes meters
//! exactly as the whole body does, and nothing fed to any decoder panics.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::*;
use crate::provider::ProviderKind;
use crate::usage::observer::{End, Observation, ObservedBody};

/// Cases per property: sized so every property here runs in a few seconds in debug.
pub(crate) fn config(cases: u32) -> ProptestConfig {
    // Failures are turned into named regression tests, not files written next to the source.
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Cuts `body` at `cuts` (each taken modulo its length + 1, then sorted): repeated points
/// give empty slices, neighbouring ones single bytes.
pub(crate) fn partition<'a>(body: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut slices = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for end in at {
        slices.push(&body[start..end]);
        start = end;
    }
    slices.push(&body[start..]);
    slices
}

static CORPUS: LazyLock<Vec<Case>> = LazyLock::new(|| CASES.iter().map(|name| Case::load(name)).collect());

/// Meters `slices` in order; bit `i % 64` of `by_frame` picks `feed_bytes` over `feed`.
fn meter_with(api: Api, status: u16, sse: bool, cap: usize, slices: &[&[u8]], by_frame: u64) -> Metered {
    let mut m = Meter::new(api, status, sse, cap);
    for (i, s) in slices.iter().enumerate() {
        if by_frame >> (i % 64) & 1 == 1 {
            m.feed_bytes(&Bytes::copy_from_slice(s));
        } else {
            m.feed(s);
        }
    }
    m.finish()
}

fn compress(encoding: &str, plain: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 3, 20);
                w.write_all(plain).unwrap();
            }
            out
        }
        "zstd" => zstd::stream::encode_all(plain, 1).unwrap(),
        other => panic!("no encoder for {other}"),
    }
}

/// Runs `frames` through an [`ObservedBody`] the way the proxy does; returns what settled
/// and the bytes the client got.
fn observe(case: &Case, encoding: &str, frames: Vec<Bytes>) -> (Observation, Vec<u8>) {
    let settled = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&settled);
    let meter = Meter::new(case.api, case.status, case.sse, CAP);
    let frames = frames.into_iter().map(|f| Ok::<_, Infallible>(Frame::data(f)));
    let body = ObservedBody::new(
        StreamBody::new(futures_util::stream::iter(frames)),
        meter,
        Some(encoding),
        Box::new(move |o| *slot.lock().unwrap() = Some(o)),
    );
    let passed = body.collect().now_or_never().unwrap().unwrap().to_bytes().to_vec();
    let observation = settled.lock().unwrap().take().expect("settled once");
    (observation, passed)
}

/// Every metered API.
const APIS: [Api; 8] = [
    Api::ChatCompletions,
    Api::Completions,
    Api::Responses,
    Api::Embeddings,
    Api::Messages,
    Api::GenerateContent,
    Api::StreamGenerateContent,
    Api::EmbedContent,
];

/// Pieces that, strung together, make bodies near enough to real ones to reach the
/// decoders' interesting paths: field names, line ends, usage objects, odd numbers.
const TOKENS: &[&str] = &[
    "data: ",
    "data:",
    "event: ",
    "event: message_delta\n",
    "event: message_start\n",
    "event: error\n",
    "event: response.completed\n",
    ": ping",
    "\n",
    "\r",
    "\r\n",
    "\n\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "null",
    "[DONE]",
    r#""model":"m-1""#,
    r#""modelVersion":"g""#,
    r#""usage":null"#,
    r#""usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}"#,
    r#""usage":{"input_tokens":3,"output_tokens":18446744073709551615,"cache_read_input_tokens":-1}"#,
    r#""usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1.5,"thoughtsTokenCount":2}"#,
    r#""x_groq":{"usage":{"prompt_tokens":1}}"#,
    r#""type":"message_delta""#,
    r#""type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2}}"#,
    r#""output":[{"type":"web_search_call","id":"ws_1"},{"type":"web_search_call"}]"#,
    r#""candidates":[{"finishReason":"STOP"}]"#,
    r#""error":{"message":"x"}"#,
    r#""choices":[]"#,
    r#""service_tier":"flex""#,
    "\u{e9}\u{2014}",
    "\\u00e9\\\"",
];

/// A window of some corpus body, so real payloads get cut and glued in odd places.
fn corpus_window() -> impl Strategy<Value = Vec<u8>> {
    (any::<Index>(), any::<Index>(), 0usize..300).prop_map(|(case, start, len)| {
        let body = &CORPUS[case.index(CORPUS.len())].body;
        let start = start.index(body.len() + 1);
        body[start..(start + len).min(body.len())].to_vec()
    })
}

/// Bytes shaped like a provider response, or like nothing at all.
pub(crate) fn response_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
        2 => corpus_window(),
        1 => vec(any::<u8>(), 0..16),
    ];
    vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn any_partition_of_a_corpus_body_meters_as_the_whole(
        case in any::<Index>(),
        cuts in vec(any::<Index>(), 0..120),
        by_frame in any::<u64>(),
    ) {
        let c = &CORPUS[case.index(CORPUS.len())];
        let whole = meter(c.api, c.status, c.sse, &[&c.body]);
        let got = meter_with(c.api, c.status, c.sse, CAP, &partition(&c.body, &cuts), by_frame);
        prop_assert_eq!(got, whole, "{}", c.name);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn a_compressed_corpus_body_in_any_frames_meters_as_the_plain_one(
        case in any::<Index>(),
        encoding in select(&["gzip", "deflate", "br", "zstd"][..]),
        cuts in vec(any::<Index>(), 0..40),
    ) {
        let c = &CORPUS[case.index(CORPUS.len())];
        let plain = meter(c.api, c.status, c.sse, &[&c.body]);
        let compressed = compress(encoding, &c.body);
        let frames = partition(&compressed, &cuts).into_iter().map(Bytes::copy_from_slice).collect();
        let (observation, passed) = observe(c, encoding, frames);
        prop_assert_eq!(observation.metered, plain, "{} {}", c.name, encoding);
        prop_assert_eq!(observation.end, End::Complete);
        prop_assert_eq!(observation.bytes, compressed.len() as u64);
        prop_assert!(passed == compressed, "the client must get the compressed bytes untouched");
    }
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn any_bytes_meter_the_same_in_any_partition_without_panicking(
        api in select(&APIS[..]),
        status in select(&[200u16, 201, 429, 500][..]),
        sse in any::<bool>(),
        cap in prop_oneof![Just(CAP), 0usize..200],
        body in response_like(),
        cuts in vec(any::<Index>(), 0..24),
        by_frame in any::<u64>(),
    ) {
        let whole = meter_with(api, status, sse, cap, &[&body], 0);
        let got = meter_with(api, status, sse, cap, &partition(&body, &cuts), by_frame);
        prop_assert_eq!(&got, &whole);
        prop_assert!(!whole.complete || whole.usage.is_some(), "complete without usage");
        prop_assert!(sse || whole.events == 0);
        prop_assert!(whole.upstream_error || (200..300).contains(&status), "an error status is an upstream error");
    }

    #[test]
    fn detecting_the_api_of_any_path_never_panics(kind in select(&ProviderKind::ALL[..]), path in any::<String>()) {
        let _ = kind.api(&path);
    }
}
