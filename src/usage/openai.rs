//! OpenAI wire family (and compatibles): where chat, completions, embeddings and Responses
//! bodies report usage, mapped onto [`Usage`].
//!
//! Chat/completions streams carry usage on one chunk: a trailing `choices: []` chunk (OpenAI,
//! Azure, with `stream_options.include_usage`) or the `finish_reason` chunk (Groq, Mistral,
//! DeepSeek, OpenRouter). Groq repeats it under `x_groq.usage`, which is only a fallback so it is
//! never counted twice. The Responses API reports usage only in its terminal event.
//!
//! Billed dimensions: the tier that served the request is the top-level `service_tier` of a chat
//! body or chunk, and of the terminal Responses `response` (`response.created` only echoes the
//! request); audio tokens are the `audio_tokens` of the prompt and completion details; web
//! searches are the Responses `web_search_call` output items, counted once each by id however
//! many stream events mention them.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::Deserialize;

use super::json::{
    has_non_null, parse, Count, Fold, Folded, Maybe, Present, Str, Text, ERROR_KEY, USAGE_KEY,
};
use super::sse::Event;
use super::{Api, Tally, Usage};

/// The output item type of one server-side web search.
const WEB_SEARCH_CALL: &str = "web_search_call";

/// Prefilter for the few stream events that may describe a web search.
static WEB_SEARCH_CALL_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(WEB_SEARCH_CALL.as_bytes()));

/// Decoder state for one OpenAI-family response.
#[derive(Debug)]
pub struct Decoder {
    api: Api,
    /// The last tier a chat chunk reported (every chunk carries it).
    tier: Option<String>,
    /// Responses `web_search_call` items seen so far.
    searches: Searches,
}

/// Web search calls of one response, each counted once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Searches {
    ids: Vec<String>,
    /// Items of the terminal `output` without an id: counted, cannot be matched.
    anonymous: u64,
}

impl Searches {
    /// Notes the call `id` (a stream event about it, or an output item).
    fn seen(&mut self, id: &str) {
        if !self.ids.iter().any(|known| known == id) {
            self.ids.push(id.to_owned());
        }
    }

    fn count(&self) -> u64 {
        (self.ids.len() as u64).saturating_add(self.anonymous)
    }
}

impl<'de> Fold<'de> for Searches {
    type Item = Item<'de>;

    fn add(&mut self, item: Item<'de>) {
        if item.kind.is(WEB_SEARCH_CALL) {
            match item.id.0.as_deref() {
                Some(id) if !id.is_empty() => self.seen(id),
                _ => self.anonymous = self.anonymous.saturating_add(1),
            }
        }
    }
}

impl Decoder {
    /// A decoder for `api`, which must be one of the OpenAI endpoints.
    pub(super) fn new(api: Api) -> Decoder {
        Decoder { api, tier: None, searches: Searches::default() }
    }

    pub(super) fn event(&mut self, event: Event<'_>, tally: &mut Tally) {
        if event.name == "error" {
            tally.upstream_error = true;
        }
        match self.api {
            Api::Responses => self.responses_event(event, tally),
            _ => self.chat_chunk(event, tally),
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
                self.take_response(response, tally);
            }
            _ => {
                let Some(chunk) = parse::<Chunk>(body) else {
                    return;
                };
                self.take_chunk(chunk, tally);
            }
        }
    }

    fn chat_chunk(&mut self, event: Event<'_>, tally: &mut Tally) {
        let data = event.data.as_bytes();
        if !data.starts_with(b"{") {
            return; // `[DONE]` and anything else that is not a JSON object
        }
        // Most chunks are content deltas: once the model is known, only a chunk that may carry
        // usage or an error is worth parsing (the usage chunk repeats the tier).
        let relevant =
            tally.model.is_none() || has_non_null(data, &USAGE_KEY) || has_non_null(data, &ERROR_KEY);
        if relevant {
            if let Some(chunk) = parse::<Chunk>(data) {
                self.take_chunk(chunk, tally);
            }
        }
    }

    fn take_chunk(&mut self, chunk: Chunk, tally: &mut Tally) {
        if chunk.error.is_some() {
            tally.upstream_error = true;
        }
        tally.offer_model(chunk.model);
        if chunk.service_tier.0.is_some() {
            self.tier = chunk.service_tier.0;
        }
        let top = chunk.usage.0.as_ref().and_then(ChatUsage::normalize);
        let groq = || chunk.x_groq.0.as_ref()?.usage.0.as_ref()?.normalize();
        if let Some(mut usage) = top.or_else(groq) {
            usage.service_tier.clone_from(&self.tier);
            tally.usage = Some(usage);
            tally.complete = true;
        }
    }

    fn responses_event(&mut self, event: Event<'_>, tally: &mut Tally) {
        // Without an `event:` line the name is "message" and only the payload's `type` tells.
        let unnamed = event.name == "message";
        if unnamed || SEARCH_EVENTS.iter().any(|prefix| event.name.starts_with(prefix)) {
            self.search_event(event.data.as_bytes());
        }
        if !unnamed && !RESPONSE_EVENTS.contains(&event.name) {
            return;
        }
        let Some(payload) = parse::<ResponseEvent>(event.data.as_bytes()) else {
            return;
        };
        let kind = payload.kind.0.as_deref().unwrap_or(event.name);
        match kind {
            // These echo the request (its tier may be `auto`): only the model is taken.
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
                    self.take_response(response, tally);
                }
            }
            "error" => tally.upstream_error = true,
            _ => {}
        }
    }

    /// Notes the web search an item event is about; most item events are not, and are
    /// dropped by a substring search before any parsing.
    fn search_event(&mut self, data: &[u8]) {
        if WEB_SEARCH_CALL_KEY.find(data).is_none() {
            return;
        }
        let Some(event) = parse::<ItemEvent>(data) else {
            return;
        };
        let kind = event.kind.0.as_deref().unwrap_or_default();
        let id = if kind.starts_with("response.web_search_call.") {
            event.item_id.0
        } else {
            event.item.0.filter(|item| item.kind.is(WEB_SEARCH_CALL)).and_then(|item| item.id.0)
        };
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            self.searches.seen(&id);
        }
    }

    fn take_response(&mut self, response: Response, tally: &mut Tally) {
        tally.offer_model(response.model);
        // The terminal response lists every call; those a stream already showed are not
        // counted again.
        if let Some(output) = response.output.0 {
            for id in output.ids {
                self.searches.seen(&id);
            }
            self.searches.anonymous = self.searches.anonymous.saturating_add(output.anonymous);
        }
        if let Some(mut usage) = response.usage.0.as_ref().and_then(ResponseUsage::normalize) {
            usage.service_tier = response.service_tier.0;
            let searches = self.searches.count();
            usage.web_search_requests = (searches > 0).then_some(searches);
            tally.usage = Some(usage);
            tally.complete = true;
        }
    }
}

/// A chat/completions chunk, a whole chat/completions/embeddings body, or an error envelope.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Chunk {
    model: Text,
    service_tier: Text,
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
    audio_tokens: Count,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
    audio_tokens: Count,
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
            audio_input_tokens: prompt.and_then(|p| p.audio_tokens.0),
            audio_output_tokens: completion.and_then(|c| c.audio_tokens.0),
            ..Usage::default()
        })
    }
}

/// A Responses API `response` object (whole body, or nested in a stream event).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Response {
    model: Text,
    status: Text,
    service_tier: Text,
    usage: Maybe<ResponseUsage>,
    /// Only the web search calls of the `output` array are kept.
    output: Folded<Searches>,
    error: Present,
}

/// One `output` item, or the `item` of a `response.output_item.*` event.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    id: Str<'a>,
}

/// A stream event about one output item.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ItemEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    item: Maybe<Item<'a>>,
    /// `response.web_search_call.*` events name their item by id.
    #[serde(borrow)]
    item_id: Str<'a>,
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
            audio_input_tokens: input.and_then(|i| i.audio_tokens.0),
            audio_output_tokens: output.and_then(|o| o.audio_tokens.0),
            ..Usage::default()
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

/// Events about output items, looked at for web search calls (prefixes).
const SEARCH_EVENTS: [&str; 2] = ["response.output_item.", "response.web_search_call."];

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
