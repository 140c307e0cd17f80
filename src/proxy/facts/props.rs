//! Properties of reading a request's facts: no body or path makes it panic, and a JSON body
//! carrying model, streaming, caps, tier, geo, tools and modalities reads back as written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

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

/// Any JSON value a few levels deep, so every fact's field meets every type.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN", |f| f.is_finite()).prop_map(Value::from),
        select(&["audio", "AUDIO", "web_search", "web_fetch_x", "include_usage", "maxOutputTokens", "x"][..])
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let key = select(
            &[
                "type",
                "max_uses",
                "include_usage",
                "maxOutputTokens",
                "responseModalities",
                "input_audio",
                "x",
            ][..],
        );
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((key, inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A request body: an object of the fields the facts come from, each of any type, or bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = select(
        &[
            "model",
            "stream",
            "stream_options",
            "max_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "generationConfig",
            "service_tier",
            "inference_geo",
            "tools",
            "max_tool_calls",
            "modalities",
            "messages",
        ][..],
    );
    prop_oneof![
        3 => vec((field, value()), 0..8).prop_map(|kv| {
            let object: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            serde_json::to_vec(&object).unwrap()
        }),
        1 => vec(any::<u8>(), 0..64),
        1 => any::<String>().prop_map(String::into_bytes),
    ]
}

/// A Gemini-style or any path.
fn path() -> impl Strategy<Value = String> {
    prop_oneof!["/v1beta/models/[a-z0-9.:/-]{0,12}".prop_map(|p| p.to_owned()), any::<String>(),]
}

/// What a well-formed request asks for, and the body that says it.
#[derive(Debug, Clone)]
struct Asked {
    model: Option<String>,
    stream: Option<bool>,
    include_usage: Option<bool>,
    caps: [Option<u64>; 4],
    service_tier: Option<String>,
    inference_geo: Option<String>,
    tools: Vec<(&'static str, Option<u64>)>,
    max_tool_calls: Option<u64>,
    audio_out: bool,
    audio_in: bool,
    text: String,
}

fn asked() -> impl Strategy<Value = Asked> {
    let tool = (
        select(
            &["web_search", "web_search_20250305", "web_fetch_20250910", "function", "web_search_preview"][..],
        ),
        option::of(0u64..50),
    );
    (
        (option::of(any::<String>()), option::of(any::<bool>()), option::of(any::<bool>())),
        [
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
        ],
        (option::of(any::<String>()), option::of(any::<String>())),
        (vec(tool, 0..4), option::of(0u64..30)),
        (any::<bool>(), any::<bool>(), "[a-zA-Z0-9 .,]{0,40}"),
    )
        .prop_map(
            |(
                (model, stream, include_usage),
                caps,
                (service_tier, inference_geo),
                (tools, max_tool_calls),
                (audio_out, audio_in, text),
            )| {
                Asked {
                    model,
                    stream,
                    include_usage,
                    caps,
                    service_tier,
                    inference_geo,
                    tools,
                    max_tool_calls,
                    audio_out,
                    audio_in,
                    text,
                }
            },
        )
}

impl Asked {
    fn body(&self, gemini: bool) -> Vec<u8> {
        let mut o = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                o.insert(k.to_owned(), v);
            }
        };
        put("model", self.model.clone().map(Value::from));
        put("stream", self.stream.map(Value::from));
        put("stream_options", self.include_usage.map(|u| json!({ "include_usage": u })));
        put("max_completion_tokens", self.caps[0].map(Value::from));
        put("max_tokens", self.caps[1].map(Value::from));
        put("max_output_tokens", self.caps[2].map(Value::from));
        let mut generation = Map::new();
        if let Some(cap) = self.caps[3] {
            generation.insert("maxOutputTokens".into(), cap.into());
        }
        if self.audio_out && gemini {
            generation.insert("responseModalities".into(), json!(["AUDIO"]));
        }
        put("generationConfig", Some(Value::Object(generation)));
        put(
            "modalities",
            Some(if self.audio_out && !gemini { json!(["text", "audio"]) } else { json!(["text"]) }),
        );
        put("service_tier", self.service_tier.clone().map(Value::from));
        put("inference_geo", self.inference_geo.clone().map(Value::from));
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|(kind, uses)| match uses {
                Some(n) => json!({ "type": kind, "max_uses": n }),
                None => json!({ "type": kind }),
            })
            .collect();
        put("tools", Some(Value::Array(tools)));
        put("max_tool_calls", self.max_tool_calls.map(Value::from));
        let mut content = vec![json!({ "type": "text", "text": self.text })];
        if self.audio_in {
            content.push(
                json!({ "type": "input_audio", "input_audio": { "data": "UklGRg==", "format": "wav" } }),
            );
        }
        put("messages", Some(json!([{ "role": "user", "content": content }])));
        serde_json::to_vec(&o).unwrap()
    }

    // Facts this body does not set (ones added later included) read as their defaults.
    #[allow(clippy::needless_update)]
    fn facts(&self) -> RequestFacts {
        let allowed = |prefix: &str| {
            let sum = self
                .tools
                .iter()
                .filter(|(kind, _)| kind.starts_with(prefix))
                .fold(0u64, |sum, (_, uses)| sum.saturating_add(uses.unwrap_or(DEFAULT_SERVER_TOOL_CALLS)));
            self.max_tool_calls.map_or(sum, |cap| sum.min(cap))
        };
        RequestFacts {
            model: self.model.clone().filter(|m| m.len() <= MAX_MODEL_BYTES),
            stream: self.stream.unwrap_or(false),
            include_usage: self.include_usage.unwrap_or(false),
            max_output_tokens: self.caps.iter().flatten().next().copied(),
            service_tier: self.service_tier.clone(),
            inference_geo: self.inference_geo.clone(),
            web_search_calls: allowed("web_search"),
            web_fetch_calls: allowed("web_fetch"),
            audio_input: self.audio_in,
            audio_output: self.audio_out,
            ..RequestFacts::default()
        }
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn any_body_and_path_give_facts_without_panicking(api in select(&APIS[..]), path in path(), body in body()) {
        let facts = request_facts(api, &path, &body);
        prop_assert!(facts.stream || api != Api::StreamGenerateContent);
    }

    #[test]
    fn a_well_formed_body_reads_back_as_written(asked in asked(), api in select(&APIS[..]), model in "[a-z0-9.-]{1,20}") {
        let gemini = matches!(api, Api::GenerateContent | Api::StreamGenerateContent | Api::EmbedContent);
        let path = if gemini { format!("/v1beta/models/{model}:generateContent") } else { "/v1/x".to_owned() };
        let mut want = asked.facts();
        if gemini {
            want.model = Some(model);
        }
        want.stream |= api == Api::StreamGenerateContent;
        prop_assert_eq!(request_facts(api, &path, &asked.body(gemini)), want);
    }
}
