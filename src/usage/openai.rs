//! OpenAI wire family (and compatibles): where chat, completions, embeddings and Responses
//! bodies report usage, mapped onto [`Usage`].
//!
//! Chat/completions streams carry usage on one chunk: a trailing `choices: []` chunk (OpenAI,
//! Azure, with `stream_options.include_usage`) or the `finish_reason` chunk (Groq, Mistral,
//! DeepSeek, OpenRouter). Groq repeats it under `x_groq.usage`, which is only a fallback so it is
//! never counted twice. The Responses API reports usage only in its terminal event.

use serde::Deserialize;

use super::json::{has_non_null, parse, Count, Maybe, Present, Text, ERROR_KEY, USAGE_KEY};
use super::sse::Event;
use super::{Api, Tally, Usage};

/// Decoder state for one OpenAI-family response.
#[derive(Debug)]
pub struct Decoder {
    api: Api,
}

impl Decoder {
    /// A decoder for `api`, which must be one of the OpenAI endpoints.
    pub(super) fn new(api: Api) -> Decoder {
        Decoder { api }
    }

    pub(super) fn event(&mut self, event: Event<'_>, tally: &mut Tally) {
        if event.name == "error" {
            tally.upstream_error = true;
        }
        match self.api {
            Api::Responses => responses_event(event, tally),
            _ => chat_chunk(event, tally),
        }
    }

    pub(super) fn body(&mut self, body: &[u8], tally: &mut Tally) {
        match self.api {
            Api::Responses => {
                let Some(response) = parse::<Response>(body) else {
                    return;
                };
                if response.error.is_some() || response.status.0.as_deref() == Some("failed") {
                    tally.upstream_error = true;
                }
                take_response(response, tally);
            }
            _ => {
                let Some(chunk) = parse::<Chunk>(body) else {
                    return;
                };
                take_chunk(chunk, tally);
            }
        }
    }
}

/// A chat/completions chunk, a whole chat/completions/embeddings body, or an error envelope.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Chunk {
    model: Text,
    usage: Maybe<ChatUsage>,
    x_groq: Maybe<XGroq>,
    error: Present,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct XGroq {
    usage: Maybe<ChatUsage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    total_tokens: Count,
    prompt_tokens_details: Maybe<PromptDetails>,
    completion_tokens_details: Maybe<CompletionDetails>,
    /// DeepSeek's own name for the cache hits (equal to `prompt_tokens_details.cached_tokens`).
    prompt_cache_hit_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
}

impl ChatUsage {
    /// `None` for a usage object with no token count at all (e.g. only Groq timings).
    fn normalize(&self) -> Option<Usage> {
        if self.prompt_tokens.0.is_none()
            && self.completion_tokens.0.is_none()
            && self.total_tokens.0.is_none()
        {
            return None;
        }
        let prompt = self.prompt_tokens_details.0.as_ref();
        let completion = self.completion_tokens_details.0.as_ref();
        Some(Usage {
            // prompt_tokens already includes cached tokens; completion_tokens includes reasoning.
            input_tokens: self.prompt_tokens.0.unwrap_or(0),
            cached_input_tokens: prompt
                .and_then(|p| p.cached_tokens.0)
                .or(self.prompt_cache_hit_tokens.0)
                .unwrap_or(0),
            cache_write_tokens: prompt.and_then(|p| p.cache_write_tokens.0).unwrap_or(0),
            cache_write_1h_tokens: 0,
            output_tokens: self.completion_tokens.0.unwrap_or(0),
            reasoning_tokens: completion.and_then(|c| c.reasoning_tokens.0).unwrap_or(0),
        })
    }
}

fn chat_chunk(event: Event<'_>, tally: &mut Tally) {
    let data = event.data.as_bytes();
    if !data.starts_with(b"{") {
        return; // `[DONE]` and anything else that is not a JSON object
    }
    // Most chunks are content deltas: once the model is known, only a chunk that may carry
    // usage or an error is worth parsing.
    let relevant = tally.model.is_none() || has_non_null(data, &USAGE_KEY) || has_non_null(data, &ERROR_KEY);
    if relevant {
        if let Some(chunk) = parse::<Chunk>(data) {
            take_chunk(chunk, tally);
        }
    }
}

fn take_chunk(chunk: Chunk, tally: &mut Tally) {
    if chunk.error.is_some() {
        tally.upstream_error = true;
    }
    tally.offer_model(chunk.model);
    let top = chunk.usage.0.as_ref().and_then(ChatUsage::normalize);
    let groq = || chunk.x_groq.0.as_ref()?.usage.0.as_ref()?.normalize();
    if let Some(usage) = top.or_else(groq) {
        tally.usage = Some(usage);
        tally.complete = true;
    }
}

/// A Responses API `response` object (whole body, or nested in a stream event).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Response {
    model: Text,
    status: Text,
    usage: Maybe<ResponseUsage>,
    error: Present,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseUsage {
    input_tokens: Count,
    input_tokens_details: Maybe<PromptDetails>,
    output_tokens: Count,
    output_tokens_details: Maybe<CompletionDetails>,
    total_tokens: Count,
}

impl ResponseUsage {
    fn normalize(&self) -> Option<Usage> {
        if self.input_tokens.0.is_none() && self.output_tokens.0.is_none() && self.total_tokens.0.is_none() {
            return None;
        }
        let input = self.input_tokens_details.0.as_ref();
        let output = self.output_tokens_details.0.as_ref();
        Some(Usage {
            input_tokens: self.input_tokens.0.unwrap_or(0),
            cached_input_tokens: input.and_then(|i| i.cached_tokens.0).unwrap_or(0),
            cache_write_tokens: input.and_then(|i| i.cache_write_tokens.0).unwrap_or(0),
            cache_write_1h_tokens: 0,
            output_tokens: self.output_tokens.0.unwrap_or(0),
            reasoning_tokens: output.and_then(|o| o.reasoning_tokens.0).unwrap_or(0),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseEvent {
    #[serde(rename = "type")]
    kind: Text,
    response: Maybe<Response>,
}

/// Events whose payload matters; the many delta/item events are skipped unparsed.
const RESPONSE_EVENTS: [&str; 7] = [
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

fn responses_event(event: Event<'_>, tally: &mut Tally) {
    // Without an `event:` line the name is "message" and only the payload's `type` tells.
    if event.name != "message" && !RESPONSE_EVENTS.contains(&event.name) {
        return;
    }
    let Some(payload) = parse::<ResponseEvent>(event.data.as_bytes()) else {
        return;
    };
    let kind = payload.kind.0.as_deref().unwrap_or(event.name);
    match kind {
        "response.created" | "response.in_progress" | "response.queued" => {
            if let Some(response) = payload.response.0 {
                tally.offer_model(response.model);
            }
        }
        // `incomplete` (e.g. max_output_tokens reached) is billed like `completed`.
        "response.completed" | "response.incomplete" | "response.failed" => {
            if kind == "response.failed" {
                tally.upstream_error = true;
            }
            if let Some(response) = payload.response.0 {
                take_response(response, tally);
            }
        }
        "error" => tally.upstream_error = true,
        _ => {}
    }
}

fn take_response(response: Response, tally: &mut Tally) {
    tally.offer_model(response.model);
    if let Some(usage) = response.usage.0.as_ref().and_then(ResponseUsage::normalize) {
        tally.usage = Some(usage);
        tally.complete = true;
    }
}
