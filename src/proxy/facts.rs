//! What a request body says that metering needs: model, streaming, the usage option,
//! its output cap, and what may raise its price (tier, server tools, audio, geo). Read
//! once, before the request is admitted; everything else in the body is ignored.

use serde::Deserialize;

use crate::provider::gemini;
use crate::usage::Api;

/// The few request fields metering needs; everything else in the body is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: Option<String>,
    pub stream: bool,
    /// `stream_options.include_usage` was already true.
    pub include_usage: bool,
    /// The request's own output cap, whichever field its API uses.
    pub max_output_tokens: Option<u64>,
    /// The tier it asks for (`service_tier`); the response's may differ.
    pub service_tier: Option<String>,
    /// The region it asks to be served in (Anthropic `inference_geo`).
    pub inference_geo: Option<String>,
    /// Most server-side web searches its tools allow.
    pub web_search_calls: u64,
    /// Most server-side web fetches its tools allow.
    pub web_fetch_calls: u64,
    /// The body carries audio input.
    pub audio_input: bool,
    /// It asks for audio output (`modalities`, Gemini `responseModalities`).
    pub audio_output: bool,
    /// A Responses call run in the background (`"background": true`): the answer is a
    /// queued stub, the work and its usage come later.
    pub background: bool,
}

/// Longest model name taken from a request. Real names (dated snapshots, router slugs,
/// fine-tune ids, ARNs) are well under it; a longer one names no model the price list
/// has, and would be carried into the journal and every record of the request.
pub const MAX_MODEL_BYTES: usize = 1024;

/// Server-side tool calls assumed for a tool that sets no `max_uses` (Anthropic) and a
/// request without `max_tool_calls` (OpenAI Responses): neither API has a limit of its own.
pub const DEFAULT_SERVER_TOOL_CALLS: u64 = 10;

#[derive(Deserialize)]
struct RawFacts {
    #[serde(default)]
    model: Option<serde_json::Value>,
    #[serde(default)]
    stream: Option<serde_json::Value>,
    #[serde(default)]
    background: Option<serde_json::Value>,
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_output_tokens: Option<serde_json::Value>,
    #[serde(default, rename = "generationConfig")]
    generation_config: Option<serde_json::Value>,
    #[serde(default)]
    service_tier: Option<serde_json::Value>,
    #[serde(default)]
    inference_geo: Option<serde_json::Value>,
    #[serde(default)]
    tools: Option<serde_json::Value>,
    #[serde(default)]
    max_tool_calls: Option<serde_json::Value>,
    #[serde(default)]
    modalities: Option<serde_json::Value>,
}

/// Server-side tool calls a request's `tools` allow, `(web searches, web fetches)`: each
/// `web_search*` / `web_fetch*` tool (Anthropic `web_search_20250305`, OpenAI `web_search`,
/// `web_search_preview`) at its `max_uses`, or the default; all capped by `max_tool_calls`.
fn server_tool_calls(tools: Option<&serde_json::Value>, max_tool_calls: Option<u64>) -> (u64, u64) {
    let (mut search, mut fetch) = (0u64, 0u64);
    for tool in tools.and_then(serde_json::Value::as_array).into_iter().flatten() {
        let kind = tool.get("type").and_then(serde_json::Value::as_str).unwrap_or_default();
        let uses =
            tool.get("max_uses").and_then(serde_json::Value::as_u64).unwrap_or(DEFAULT_SERVER_TOOL_CALLS);
        if kind.starts_with("web_search") {
            search = search.saturating_add(uses);
        } else if kind.starts_with("web_fetch") {
            fetch = fetch.saturating_add(uses);
        }
    }
    match max_tool_calls {
        Some(cap) => (search.min(cap), fetch.min(cap)),
        None => (search, fetch),
    }
}

/// Whether a request body carries audio input: an OpenAI `input_audio` part or a
/// Gemini/inline part with an `audio/...` MIME type. A mention in text only raises the
/// estimate, which stays an upper bound.
fn has_audio_input(body: &[u8]) -> bool {
    memchr::memmem::find(body, br#""input_audio""#).is_some()
        || memchr::memmem::find(body, br#""audio/"#).is_some()
}

/// Whether a list of output modalities (`["text", "audio"]`, Gemini `["AUDIO"]`) has audio.
fn asks_audio(modalities: Option<&serde_json::Value>) -> bool {
    modalities
        .and_then(serde_json::Value::as_array)
        .is_some_and(|m| m.iter().any(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("audio"))))
}

/// Reads the facts from a request body and path; a body that is not JSON yields none.
pub fn request_facts(api: Api, path: &str, body: &[u8]) -> RequestFacts {
    // A key given twice is an error for a struct, but the providers' parsers take the
    // last value: read such a body the slow way, as they do, rather than as no facts.
    let raw: Option<RawFacts> = serde_json::from_slice(body).ok().or_else(|| {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        serde_json::from_value(value).ok()
    });
    let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_owned));
    let mut facts = match raw {
        Some(r) => {
            let generation = r.generation_config.as_ref();
            let cap = [r.max_completion_tokens, r.max_tokens, r.max_output_tokens]
                .into_iter()
                .flatten()
                .chain(generation.and_then(|g| g.get("maxOutputTokens").cloned()))
                .find_map(|v| v.as_u64());
            let max_tool_calls = r.max_tool_calls.as_ref().and_then(serde_json::Value::as_u64);
            let (web_search_calls, web_fetch_calls) = server_tool_calls(r.tools.as_ref(), max_tool_calls);
            RequestFacts {
                stream: r.stream.and_then(|s| s.as_bool()).unwrap_or(false),
                include_usage: r
                    .stream_options
                    .and_then(|o| o.get("include_usage").and_then(serde_json::Value::as_bool))
                    .unwrap_or(false),
                max_output_tokens: cap,
                audio_output: asks_audio(r.modalities.as_ref())
                    || asks_audio(generation.and_then(|g| g.get("responseModalities"))),
                model: text(r.model),
                service_tier: text(r.service_tier),
                inference_geo: text(r.inference_geo),
                web_search_calls,
                web_fetch_calls,
                audio_input: false,
                background: api == Api::Responses && r.background.and_then(|b| b.as_bool()).unwrap_or(false),
            }
        }
        None => RequestFacts::default(),
    };
    // Not JSON, or JSON of another shape: audio is looked for in the bytes either way.
    facts.audio_input = has_audio_input(body);
    let gemini = matches!(api, Api::GenerateContent | Api::StreamGenerateContent | Api::EmbedContent);
    if gemini {
        // Gemini names the model in the path: .../models/{model}:generateContent
        facts.model = gemini::model_in_path(path).map(str::to_owned).or(facts.model);
    }
    facts.stream = facts.stream || api == Api::StreamGenerateContent;
    // Estimated like a request whose model cannot be known: at the ceiling price.
    facts.model = facts.model.filter(|m| m.len() <= MAX_MODEL_BYTES);
    facts
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_counts_as_its_last_value_like_the_providers_read_it() {
        let f = request_facts(
            Api::ChatCompletions,
            "/v1/chat/completions",
            br#"{"model":"gpt-4o-mini","stream":false,"messages":[],"model":"gpt-4o","stream":true}"#,
        );
        assert_eq!(f.model.as_deref(), Some("gpt-4o"));
        assert!(f.stream);
    }

    #[test]
    fn facts_come_from_the_body_or_the_gemini_path() {
        let f = request_facts(
            Api::ChatCompletions,
            "/v1/chat/completions",
            br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#,
        );
        assert_eq!(
            f,
            RequestFacts {
                model: Some("gpt-4o".into()),
                stream: true,
                include_usage: true,
                ..RequestFacts::default()
            }
        );
        let f = request_facts(Api::Messages, "/v1/messages", br#"{"model":"m","max_tokens":300}"#);
        assert_eq!(f.max_output_tokens, Some(300));
        let f = request_facts(
            Api::GenerateContent,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            br#"{"generationConfig":{"maxOutputTokens":77}}"#,
        );
        assert_eq!(f.max_output_tokens, Some(77));
        let f = request_facts(Api::ChatCompletions, "/v1/chat/completions", b"not json");
        assert_eq!(f, RequestFacts::default());
        let f = request_facts(
            Api::StreamGenerateContent,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            b"{}",
        );
        assert_eq!(f.model.as_deref(), Some("gemini-2.5-flash"));
        assert!(f.stream);
        let f = request_facts(Api::Messages, "/v1/messages", br#"{"model":7,"stream":"yes"}"#);
        assert_eq!(f, RequestFacts::default());
    }

    #[test]
    fn a_model_name_too_long_to_be_one_is_not_taken() {
        // Over a megabyte it could not even be journaled, and the request was refused.
        let long = "m".repeat(2 << 20);
        let body = format!(r#"{{"model":"{long}","stream":true,"max_tokens":5}}"#);
        let f = request_facts(Api::ChatCompletions, "/v1/chat/completions", body.as_bytes());
        assert_eq!((f.model, f.stream, f.max_output_tokens), (None, true, Some(5)));
        let path = format!("/v1beta/models/{}:generateContent", "g".repeat(MAX_MODEL_BYTES + 1));
        assert_eq!(request_facts(Api::GenerateContent, &path, b"{}").model, None);
        let name = "x".repeat(MAX_MODEL_BYTES);
        let body = format!(r#"{{"model":"{name}"}}"#);
        let f = request_facts(Api::Messages, "/v1/messages", body.as_bytes());
        assert_eq!(f.model, Some(name));
    }

    #[test]
    fn facts_name_what_may_raise_the_price() {
        let f = request_facts(
            Api::Messages,
            "/v1/messages",
            br#"{"model":"claude-opus-4-6","inference_geo":"us","tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3},{"type":"web_fetch_20250910","name":"web_fetch"},{"type":"custom","name":"web_search_lookalike"}]}"#,
        );
        assert_eq!(f.inference_geo.as_deref(), Some("us"));
        assert_eq!((f.web_search_calls, f.web_fetch_calls), (3, DEFAULT_SERVER_TOOL_CALLS));
        assert!(!f.audio_input && !f.audio_output && f.service_tier.is_none());
        let f = request_facts(
            Api::Responses,
            "/v1/responses",
            br#"{"model":"gpt-5","service_tier":"priority","max_tool_calls":4,"tools":[{"type":"web_search"},{"type":"web_search_preview"},{"type":"function","name":"f"}]}"#,
        );
        assert_eq!(
            (f.service_tier.as_deref(), f.web_search_calls, f.web_fetch_calls),
            (Some("priority"), 4, 0)
        );
        let f = request_facts(
            Api::Responses,
            "/v1/responses",
            br#"{"model":"gpt-5","tools":[{"type":"web_search"},{"type":"web_search_preview"}]}"#,
        );
        assert_eq!(f.web_search_calls, 2 * DEFAULT_SERVER_TOOL_CALLS);
        let f = request_facts(
            Api::ChatCompletions,
            "/v1/chat/completions",
            br#"{"model":"gpt-4o-audio-preview","modalities":["text","audio"],"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]}"#,
        );
        assert!(f.audio_input && f.audio_output);
        let f = request_facts(
            Api::GenerateContent,
            "/v1beta/models/gemini-2.5-flash:generateContent",
            br#"{"contents":[{"parts":[{"inline_data":{"mime_type":"audio/mp3","data":"AAAA"}}]}],"generationConfig":{"responseModalities":["AUDIO"]}}"#,
        );
        assert!(f.audio_input && f.audio_output);
        let f = request_facts(
            Api::ChatCompletions,
            "/v1/chat/completions",
            br#"{"modalities":["text"],"service_tier":3}"#,
        );
        assert!(!f.audio_input && !f.audio_output && f.service_tier.is_none());
    }
}
