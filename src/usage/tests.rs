//! Conformance of [`Meter`] with the public usage corpus under every slicing, plus synthetic
//! cases for documented rules the corpus does not exercise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Api, Meter, Metered, Usage};
use crate::provider::ProviderKind as Kind;

const CAP: usize = 1 << 20;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/public")
}

/// Runs a body through a fresh meter, one `feed` per slice.
fn meter(api: Api, status: u16, sse: bool, slices: &[&[u8]]) -> Metered {
    let mut m = Meter::new(api, status, sse, CAP);
    for s in slices {
        m.feed(s);
    }
    m.finish()
}

/// Tiny deterministic xorshift so "random" slicings are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Meters `body` whole, split at every offset, byte by byte and in random slices, asserting
/// that every slicing gives the same result, which is returned.
fn meter_all_slicings(api: Api, status: u16, sse: bool, body: &[u8]) -> Metered {
    let whole = meter(api, status, sse, &[body]);
    for i in 0..=body.len() {
        let got = meter(api, status, sse, &[&body[..i], &body[i..]]);
        assert_eq!(got, whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(meter(api, status, sse, &bytes), whole, "byte by byte");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ body.len() as u64);
    for round in 0..8 {
        let mut slices = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            // Empty slices are legal input and must change nothing.
            let n = rng.below(if round % 2 == 0 { 8 } else { 300 }).min(rest.len());
            let (head, tail) = rest.split_at(n);
            slices.push(head);
            rest = tail;
        }
        assert_eq!(meter(api, status, sse, &slices), whole, "random round {round}");
    }
    whole
}

fn kind_of(provider: &str) -> Kind {
    match provider {
        "anthropic" => Kind::Anthropic,
        "gemini" => Kind::Gemini,
        "openai" | "azure_openai" | "groq" | "deepseek" | "mistral" | "openrouter" => Kind::OpenAi,
        other => panic!("unknown provider {other}"),
    }
}

fn field(expected: &Value, key: &str) -> Option<u64> {
    expected.get(key).and_then(Value::as_u64)
}

/// One public corpus response, with what the proxy would know when metering it.
pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) api: Api,
    pub(super) status: u16,
    pub(super) sse: bool,
    pub(super) body: Vec<u8>,
    pub(super) expected: Value,
}

impl Case {
    pub(super) fn load(name: &'static str) -> Case {
        let dir = corpus_dir();
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
        let request: Value = serde_json::from_slice(&read("request.json")).unwrap();
        let expected: Value = serde_json::from_slice(&read("expected.json")).unwrap();
        let kind = kind_of(expected["provider"].as_str().unwrap());
        let path = request["path"].as_str().unwrap();
        let api = kind.native_api(path).unwrap_or_else(|| panic!("{name}: {path} not metered"));
        let status = u16::try_from(expected["http_status"].as_u64().unwrap()).unwrap();
        let headers = expected["response_headers"].as_object().unwrap();
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default();
        let sse = content_type.starts_with("text/event-stream");
        Case { name, api, status, sse, body: read("response"), expected }
    }
}

fn check_case(name: &'static str) {
    let Case { api, status, sse, body, expected, .. } = Case::load(name);
    let got = meter_all_slicings(api, status, sse, &body);
    assert_eq!(got.model.as_deref(), expected["model"].as_str(), "{name}: model");
    assert_eq!(got.usage.is_some(), expected["usage_reported"] == true, "{name}: usage_reported");
    assert_eq!(got.complete, expected["usage_complete"] == true, "{name}: usage_complete");
    assert_eq!(got.upstream_error, expected["upstream_error"] == true, "{name}: upstream_error");
    assert!(!got.overflowed, "{name}: overflowed");
    let tokens = got.usage.as_ref().map(|u| {
        [u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens]
    });
    let keys =
        ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"];
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(tokens.map(|t| t[i]), field(&expected, key), "{name}: {key}");
    }
    if let Some(h1) = field(&expected["extra"], "cache_write_1h_tokens") {
        assert_eq!(got.usage.as_ref().map(|u| u.cache_write_1h_tokens), Some(h1), "{name}: 1h");
    }
    if let Some(usage) = &got.usage {
        check_dimensions(name, &expected, usage);
    }
}

/// The billed dimensions beyond tokens: a field the case carries must match exactly; an absent
/// count means "not applicable", which a record may hold as null or 0.
pub(super) fn check_dimensions(name: &str, expected: &Value, usage: &Usage) {
    let counts = [
        ("audio_input_tokens", usage.audio_input_tokens),
        ("audio_output_tokens", usage.audio_output_tokens),
        ("web_search_requests", usage.web_search_requests),
        ("web_fetch_requests", usage.web_fetch_requests),
    ];
    for (key, got) in counts {
        match field(expected, key) {
            Some(want) => assert_eq!(got, Some(want), "{name}: {key}"),
            None => assert!(got.unwrap_or(0) == 0, "{name}: {key} = {got:?}, the case has none"),
        }
    }
    for (key, got) in [("service_tier", &usage.service_tier), ("inference_geo", &usage.inference_geo)] {
        if let Some(want) = expected.get(key).filter(|v| !v.is_null()) {
            assert_eq!(got.as_deref(), want.as_str(), "{name}: {key}");
        }
    }
}

/// One test per public case, so a failure names its case and the cases run in parallel.
macro_rules! corpus_cases {
    ($($case:ident),* $(,)?) => {
        const CASES: &[&str] = &[$(stringify!($case)),*];
        mod corpus {
            $(#[test] fn $case() { super::check_case(stringify!($case)); })*
        }
    };
}

corpus_cases!(
    anthropic_error_429,
    anthropic_nonstream_basic,
    anthropic_nonstream_cache,
    anthropic_nonstream_inference_geo_us,
    anthropic_nonstream_web_search,
    anthropic_stream_basic,
    anthropic_stream_error_midstream,
    azure_openai_stream_include_usage,
    deepseek_nonstream_cache_hit,
    gemini_error_429,
    gemini_generate_content_audio_input,
    gemini_generate_content_basic,
    gemini_stream_sse_cumulative,
    groq_stream_usage_and_x_groq,
    mistral_stream_final_usage,
    openai_chat_nonstream_audio,
    openai_chat_nonstream_basic,
    openai_chat_nonstream_cached,
    openai_chat_nonstream_reasoning,
    openai_chat_nonstream_service_tier_flex,
    openai_chat_stream_error_midstream,
    openai_chat_stream_include_usage,
    openai_chat_stream_no_include_usage,
    openai_embeddings,
    openai_error_429,
    openai_responses_nonstream,
    openai_responses_nonstream_web_search,
    openai_responses_stream,
    openrouter_stream_keepalive_comments,
);

#[test]
fn every_public_case_has_a_test() {
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".expected.json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert_eq!(names, CASES, "add new corpus cases to corpus_cases!");
}

#[test]
fn truncated_and_garbled_bodies_never_panic() {
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("response") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let mut garbled = body.clone();
        for (i, b) in garbled.iter_mut().enumerate() {
            if i % 7 == 3 {
                *b = b.wrapping_mul(31) ^ 0x5a;
            }
        }
        for api in [Api::ChatCompletions, Api::Responses, Api::Messages, Api::StreamGenerateContent] {
            for sse in [true, false] {
                for cut in (0..body.len()).step_by(97) {
                    meter(api, 200, sse, &[&body[..cut]]);
                }
                meter(api, 200, sse, &[&garbled]);
            }
        }
    }
}

mod dimensions;
mod framing;
mod props;
mod synthetic;
