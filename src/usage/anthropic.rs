//! Anthropic Messages: usage in `message_start` and the cumulative `message_delta`, mapped onto
//! [`Usage`].
//!
//! Anthropic's `input_tokens` excludes cache reads and writes, so the normalized input is the sum
//! of all three. `message_delta.usage` holds running totals: every non-null field replaces the
//! value seen so far (adding would double-count the `message_start` placeholder output).
//!
//! The usage object also reports the billed dimensions beyond tokens, with the same replace
//! semantics: `service_tier` (`standard`, `priority`, `batch`), `inference_geo` (only in
//! `message_start` when streamed) and `server_tool_use` (web searches and fetches, cumulative in
//! `message_delta`).

use serde::Deserialize;

use super::json::{parse, Count, List, Maybe, Present, Text};
use super::sse::Event;
use super::{Tally, Usage};

/// Raw Anthropic counters of one response, each the latest value reported.
#[derive(Debug, Default)]
pub struct Decoder {
    input: Option<u64>,
    cache_write: Option<u64>,
    cache_read: Option<u64>,
    cache_write_5m: Option<u64>,
    cache_write_1h: Option<u64>,
    output: Option<u64>,
    thinking: Option<u64>,
    iterations: Option<Iterations>,
    web_search: Option<u64>,
    web_fetch: Option<u64>,
    service_tier: Option<String>,
    inference_geo: Option<String>,
}

/// Sums over `usage.iterations` (beta compaction), which then supersede the top-level counts.
#[derive(Debug, Default, Clone, Copy)]
struct Iterations {
    input: u64,
    output: u64,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    #[serde(rename = "type")]
    kind: Text,
    model: Text,
    usage: Maybe<RawUsage>,
    error: Present,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: Text,
    message: Maybe<Message>,
    usage: Maybe<RawUsage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    model: Text,
    usage: Maybe<RawUsage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawUsage {
    input_tokens: Count,
    cache_creation_input_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation: Maybe<CacheCreation>,
    output_tokens: Count,
    output_tokens_details: Maybe<OutputDetails>,
    iterations: List<Iteration>,
    server_tool_use: Maybe<ServerToolUse>,
    service_tier: Text,
    inference_geo: Text,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ServerToolUse {
    web_search_requests: Count,
    web_fetch_requests: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Count,
    ephemeral_1h_input_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutputDetails {
    thinking_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Iteration {
    #[serde(rename = "type")]
    kind: Text,
    input_tokens: Count,
    output_tokens: Count,
    cache_read_input_tokens: Count,
    cache_creation_input_tokens: Count,
}

/// Events that can carry a model, usage or an error; deltas and pings are skipped unparsed.
const USAGE_EVENTS: [&str; 4] = ["message_start", "message_delta", "error", "message"];

impl Decoder {
    pub(super) fn event(&mut self, event: Event<'_>, tally: &mut Tally) {
        if event.name == "error" {
            // Delivered after a 200, e.g. `overloaded_error`; flagged even if its JSON is odd.
            tally.upstream_error = true;
        }
        if !USAGE_EVENTS.contains(&event.name) {
            return;
        }
        let Some(payload) = parse::<StreamEvent>(event.data.as_bytes()) else {
            return;
        };
        match payload.kind.0.as_deref().unwrap_or(event.name) {
            "message_start" => {
                if let Some(message) = payload.message.0 {
                    tally.offer_model(message.model);
                    if let Some(usage) = message.usage.0 {
                        self.apply(usage, tally);
                    }
                }
            }
            "message_delta" => {
                if let Some(usage) = payload.usage.0 {
                    self.apply(usage, tally);
                    tally.complete = true;
                }
            }
            "error" => tally.upstream_error = true,
            _ => {}
        }
    }

    pub(super) fn body(&mut self, body: &[u8], tally: &mut Tally) {
        let Some(body) = parse::<Body>(body) else {
            return;
        };
        if body.error.is_some() || body.kind.0.as_deref() == Some("error") {
            tally.upstream_error = true;
        }
        tally.offer_model(body.model);
        if let Some(usage) = body.usage.0 {
            self.apply(usage, tally);
            tally.complete = tally.usage.is_some();
        }
    }

    /// Replaces every counter the report carries, then republishes the normalized usage.
    fn apply(&mut self, usage: RawUsage, tally: &mut Tally) {
        let creation = usage.cache_creation.0.as_ref();
        replace(&mut self.input, usage.input_tokens);
        replace(&mut self.cache_write, usage.cache_creation_input_tokens);
        replace(&mut self.cache_read, usage.cache_read_input_tokens);
        replace(&mut self.cache_write_5m, creation.map_or(Count(None), |c| c.ephemeral_5m_input_tokens));
        replace(&mut self.cache_write_1h, creation.map_or(Count(None), |c| c.ephemeral_1h_input_tokens));
        replace(&mut self.output, usage.output_tokens);
        replace(
            &mut self.thinking,
            usage.output_tokens_details.0.as_ref().map_or(Count(None), |d| d.thinking_tokens),
        );
        if let Some(sums) = sum_iterations(&usage.iterations.0) {
            self.iterations = Some(sums);
        }
        if let Some(tools) = usage.server_tool_use.0 {
            replace(&mut self.web_search, tools.web_search_requests);
            replace(&mut self.web_fetch, tools.web_fetch_requests);
        }
        if usage.service_tier.0.is_some() {
            self.service_tier = usage.service_tier.0;
        }
        if usage.inference_geo.0.is_some() {
            self.inference_geo = usage.inference_geo.0;
        }
        if let Some(normalized) = self.normalize() {
            tally.usage = Some(normalized);
        }
    }

    fn normalize(&self) -> Option<Usage> {
        let any = [
            self.input,
            self.cache_write,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.output,
        ]
        .iter()
        .any(Option::is_some);
        if !any && self.iterations.is_none() {
            return None;
        }
        let split = match (self.cache_write_5m, self.cache_write_1h) {
            (None, None) => None,
            (m5, h1) => Some(m5.unwrap_or(0).saturating_add(h1.unwrap_or(0))),
        };
        let mut uncached = self.input.unwrap_or(0);
        let mut output = self.output.unwrap_or(0);
        let mut cache_read = self.cache_read.unwrap_or(0);
        let mut cache_write = self.cache_write.or(split).unwrap_or(0);
        if let Some(it) = self.iterations {
            // Compaction: the top level covers only the final message step (medium confidence).
            uncached = it.input;
            output = it.output;
            cache_read = it.cache_read.unwrap_or(cache_read);
            cache_write = it.cache_write.unwrap_or(cache_write);
        }
        Some(Usage {
            input_tokens: uncached.saturating_add(cache_read).saturating_add(cache_write),
            cached_input_tokens: cache_read,
            cache_write_tokens: cache_write,
            cache_write_1h_tokens: self.cache_write_1h.unwrap_or(0),
            output_tokens: output,
            reasoning_tokens: self.thinking.unwrap_or(0),
            audio_input_tokens: None,
            audio_output_tokens: None,
            web_search_requests: self.web_search,
            web_fetch_requests: self.web_fetch,
            service_tier: self.service_tier.clone(),
            inference_geo: self.inference_geo.clone(),
        })
    }
}

/// Cumulative semantics: a reported value replaces the previous one, an absent one keeps it.
fn replace(slot: &mut Option<u64>, value: Count) {
    if value.0.is_some() {
        *slot = value.0;
    }
}

/// Sums the `compaction` and `message` iterations, or `None` when there are none.
fn sum_iterations(iterations: &[Iteration]) -> Option<Iterations> {
    let billed = iterations.iter().filter(|i| matches!(i.kind.0.as_deref(), Some("compaction" | "message")));
    let mut sums: Option<Iterations> = None;
    for it in billed {
        let s = sums.get_or_insert_with(Iterations::default);
        s.input = s.input.saturating_add(it.input_tokens.0.unwrap_or(0));
        s.output = s.output.saturating_add(it.output_tokens.0.unwrap_or(0));
        add(&mut s.cache_read, it.cache_read_input_tokens);
        add(&mut s.cache_write, it.cache_creation_input_tokens);
    }
    sums
}

fn add(slot: &mut Option<u64>, value: Count) {
    if let Some(v) = value.0 {
        *slot = Some(slot.unwrap_or(0).saturating_add(v));
    }
}
