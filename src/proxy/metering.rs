//! Per-request metering: what the request body says (model, streaming, usage option, and
//! what may raise its price: tier, server tools, audio, geo), the admission estimate, and the
//! settle step that prices what the observer saw and hands exactly one cost record to the
//! ledger.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dashmap::DashSet;
use rust_decimal::Decimal;
use serde::Deserialize;
use uuid::Uuid;

use crate::budget::Admission;
use crate::config::{Provider, ProviderKind};
use crate::journal::{Admitted, JournalError};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pricing::{Ask, PriceList};
use crate::store::{CostRecord, Identity, UsageSource};
use crate::usage::observer::{End, Observation};
use crate::usage::{Api, Usage};

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
        facts.model = path
            .rsplit_once("/models/")
            .and_then(|(_, rest)| rest.split_once(':'))
            .map(|(m, _)| m.to_owned())
            .or(facts.model);
    }
    facts.stream = facts.stream || api == Api::StreamGenerateContent;
    // Estimated like a request whose model cannot be known: at the ceiling price.
    facts.model = facts.model.filter(|m| m.len() <= MAX_MODEL_BYTES);
    facts
}

/// The admission estimate, an upper bound of the request's cost: input tokens bounded by the
/// body's bytes (no tokenizer emits more tokens than UTF-8 bytes of text), output at the
/// request's cap, server-side tool calls at what its tools allow, priced with the model's
/// prices at the dearest of the tiers the response may report, audio at the higher of its
/// own and the text rate, and the geo factor asked for (see [`Ask`]). A model that cannot be
/// known or priced (an Azure deployment path, a tuned model, a body that is not JSON, a
/// name over [`MAX_MODEL_BYTES`]) is
/// estimated at the highest prices listed for the provider's kind, so it cannot slip past a
/// hard budget with a zero reservation.
pub fn estimate_cost(
    prices: &PriceList,
    provider: &Provider,
    facts: &RequestFacts,
    body_bytes: u64,
    default_max_output_tokens: u64,
) -> Decimal {
    let ask = Ask {
        input_tokens: body_bytes,
        output_tokens: facts.max_output_tokens.unwrap_or(default_max_output_tokens),
        web_search_calls: facts.web_search_calls,
        web_fetch_calls: facts.web_fetch_calls,
        service_tier: facts.service_tier.as_deref(),
        inference_geo: facts.inference_geo.as_deref(),
        audio_input: facts.audio_input,
        audio_output: facts.audio_output,
    };
    if let Some(price) = facts.model.as_deref().and_then(|m| prices.resolve(&provider.name, m)) {
        return price.upper_bound(&ask);
    }
    let kind = provider.kind;
    prices.ceiling_bound(|vendor| vendor_kind(vendor) == kind, &ask).unwrap_or(Decimal::ZERO)
}

/// The provider kind that serves a price list vendor's models (every vendor other than
/// Anthropic and Google is reached through the OpenAI-compatible kind).
fn vendor_kind(vendor: Option<&str>) -> ProviderKind {
    match vendor {
        Some("anthropic") => ProviderKind::Anthropic,
        Some("gemini" | "google") => ProviderKind::Gemini,
        _ => ProviderKind::OpenAi,
    }
}

/// Unpriced model names warned about once each, at most (then no more warnings).
const MAX_WARNED_MODELS: usize = 1000;
/// Characters of a client-chosen model name that reach the log.
const MAX_LOGGED_MODEL_CHARS: usize = 100;

/// Shared metering state: the ledger, the metrics every record is counted in, and the
/// once-per-model warning set.
pub struct Metering {
    pub ledger: Ledger,
    pub metrics: Arc<Metrics>,
    warned_unpriced: DashSet<String>,
}

impl Metering {
    /// Metering that writes through `ledger` and counts in `metrics`.
    pub fn new(ledger: Ledger, metrics: Arc<Metrics>) -> Metering {
        Metering { ledger, metrics, warned_unpriced: DashSet::new() }
    }

    fn warn_unpriced(&self, provider: &str, model: &str) {
        // Model names are the client's to choose: remember a bounded number of them, and
        // log at most the start of each.
        if self.warned_unpriced.len() >= MAX_WARNED_MODELS {
            return;
        }
        let model: String = model.chars().take(MAX_LOGGED_MODEL_CHARS).collect();
        if self.warned_unpriced.insert(format!("{provider}/{model}")) {
            tracing::warn!(
                provider,
                model,
                "no price for model; recording usage with cost 0 (priced = false)"
            );
        }
    }
}

/// A forwarded metered request waiting for its response to settle.
pub struct Pending {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub started: Instant,
    pub identity: Arc<Identity>,
    pub provider: String,
    pub endpoint: String,
    pub api: Api,
    pub facts: RequestFacts,
    pub request_bytes: u64,
    pub prices: Arc<PriceList>,
    pub metering: Arc<Metering>,
    /// The budget reservation this request holds, replaced by its cost at settle.
    pub admission: Option<Admission>,
    /// Set once the record is handed to the ledger; dropping an unsettled request
    /// settles it (the client left before the response head arrived).
    pub settled: bool,
    /// The request was sent but no answer came (a timeout, a reset): the provider may
    /// bill it, so it is recorded as estimated, not as free.
    pub unanswered: bool,
    /// What the admission estimate assumed (input at most the body's bytes, output at the
    /// cap): the record of a background Responses call, whose reply is only a queued
    /// stub, since its real usage is never in what passes through.
    pub upper_bound: Usage,
}

/// Status recorded for a request whose client went away before the response head.
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            // The request reached the provider, which bills it whether or not the
            // client waited: record the estimate rather than nothing.
            self.settle_once(CLIENT_CLOSED, None);
        }
    }
}

impl Pending {
    /// Journals the request before it leaves, so even a crash cannot lose its record. On
    /// failure it must not be sent: nothing is recorded and its reservation is returned.
    pub fn journaled(mut self) -> Result<Pending, JournalError> {
        let admitted = self.admitted();
        match self.metering.ledger.admitted(admitted) {
            Ok(()) => Ok(self),
            Err(e) => {
                self.settled = true;
                Err(e)
            }
        }
    }

    /// What the journal (and the cost record) knows of this request before its answer.
    fn admitted(&self) -> Admitted {
        Admitted {
            request_id: self.request_id,
            created_at: self.created_at,
            organization_id: self.identity.organization_id,
            project_id: self.identity.project_id,
            user_id: self.identity.user_id,
            api_key_id: self.identity.api_key_id,
            provider: self.provider.clone(),
            endpoint: self.endpoint.clone(),
            model: self.facts.model.clone(),
            request_bytes: self.request_bytes,
            streamed: self.facts.stream,
        }
    }

    /// Prices and records the outcome; `observation` is `None` when no response came.
    pub fn settle(mut self, status: u16, observation: Option<Observation>) {
        self.settle_once(status, observation.as_ref());
    }

    /// Records a request that left tollgate but got no response head (`status` is the
    /// 502 or 504 the client gets): estimated from the request, since it may be billed.
    pub fn settle_unanswered(mut self, status: u16) {
        self.unanswered = true;
        self.settle_once(status, None);
    }

    fn settle_once(&mut self, status: u16, observation: Option<&Observation>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let record = self.record(status, observation);
        if let Some(admission) = self.admission.take() {
            admission.settle(record.cost_usd);
        }
        // Counted before the ledger has it: whoever sees the record stored sees it counted.
        self.metering.metrics.settled(&record);
        self.metering.ledger.record(record);
    }

    fn record(&self, status: u16, observation: Option<&Observation>) -> CostRecord {
        let success = (200..300).contains(&status);
        let metered = observation.map(|o| &o.metered);
        let reported = metered.and_then(|m| m.usage.clone());
        let (usage, source) = match (reported, metered) {
            (Some(u), Some(m)) if m.complete => (Some(u), UsageSource::Reported),
            // A background call's reply is a queued stub: its usage never passes through.
            _ if self.facts.background && success => (Some(self.upper_bound.clone()), UsageSource::Estimated),
            (Some(u), Some(_)) => (Some(u), UsageSource::Partial),
            (None, Some(_)) if success => (Some(self.estimate(observation)), UsageSource::Estimated),
            (None, None) if status == CLIENT_CLOSED || self.unanswered => {
                (Some(self.estimate(None)), UsageSource::Estimated)
            }
            // Nothing to meter (an error response): counts are unknown (null), cost 0.
            _ => (None, UsageSource::None),
        };
        let model = metered.and_then(|m| m.model.clone()).or_else(|| self.facts.model.clone());
        let price = model.as_deref().and_then(|m| self.prices.resolve(&self.provider, m));
        if price.is_none() {
            if let (Some(m), Some(_)) = (&model, &usage) {
                self.metering.warn_unpriced(&self.provider, m);
            }
        }
        let cost = match (price.as_ref(), &usage) {
            (Some(p), Some(u)) => p.cost(u),
            _ => Decimal::ZERO,
        };
        if observation.is_some_and(|o| o.end != End::Complete) {
            tracing::info!(request_id = %self.request_id, usage_source = source.as_str(), "response ended early");
        }
        let outcome = Outcome {
            model,
            usage: usage.as_ref(),
            cost,
            priced: price.is_some(),
            status_code: status,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            usage_source: source,
        };
        cost_record(self.admitted(), outcome)
    }

    /// tollgate's own estimate when the provider reported nothing: input from the request
    /// size (about four bytes a token), output one token per streamed event, or from the
    /// body size for a JSON answer; embeddings have no output.
    fn estimate(&self, observation: Option<&Observation>) -> Usage {
        let (events, bytes) = observation.map(|o| (o.metered.events, o.bytes)).unwrap_or((0, 0));
        let output_tokens = match self.api {
            Api::Embeddings | Api::EmbedContent => 0,
            _ if events > 0 => events,
            _ => bytes.div_ceil(4),
        };
        Usage { input_tokens: self.request_bytes.div_ceil(4), output_tokens, ..Usage::default() }
    }
}

/// What a request came to, for its cost record.
struct Outcome<'a> {
    model: Option<String>,
    usage: Option<&'a Usage>,
    cost: Decimal,
    priced: bool,
    status_code: u16,
    latency_ms: u64,
    usage_source: UsageSource,
}

/// The one place a cost record is made: who asked what (from the admission) and what it
/// came to. Counts are null when nothing could be metered.
fn cost_record(a: Admitted, o: Outcome<'_>) -> CostRecord {
    let usage = o.usage;
    let field = |f: fn(&Usage) -> u64| usage.map(f);
    CostRecord {
        id: Uuid::now_v7(),
        request_id: a.request_id,
        created_at: a.created_at,
        organization_id: a.organization_id,
        project_id: a.project_id,
        user_id: a.user_id,
        api_key_id: a.api_key_id,
        provider: a.provider,
        model: o.model,
        endpoint: a.endpoint,
        input_tokens: field(|u| u.input_tokens),
        cached_input_tokens: field(|u| u.cached_input_tokens),
        cache_write_tokens: field(|u| u.cache_write_tokens),
        output_tokens: field(|u| u.output_tokens),
        reasoning_tokens: field(|u| u.reasoning_tokens),
        cost_usd: o.cost,
        status_code: o.status_code,
        latency_ms: o.latency_ms,
        streamed: a.streamed,
        usage_source: o.usage_source,
        priced: o.priced,
        service_tier: usage.and_then(|u| u.service_tier.clone()),
        inference_geo: usage.and_then(|u| u.inference_geo.clone()),
        audio_input_tokens: usage.and_then(|u| u.audio_input_tokens),
        audio_output_tokens: usage.and_then(|u| u.audio_output_tokens),
        web_search_requests: usage.and_then(|u| u.web_search_requests),
        web_fetch_requests: usage.and_then(|u| u.web_fetch_requests),
    }
}

/// The record of a request a previous process admitted and never settled (it died
/// mid-request): estimated from the request's size and model, status 0, since the
/// provider may still bill it.
pub fn unsettled_record(admitted: &Admitted, prices: &PriceList) -> CostRecord {
    let usage = Usage { input_tokens: admitted.request_bytes.div_ceil(4), ..Usage::default() };
    let price = admitted.model.as_deref().and_then(|m| prices.resolve(&admitted.provider, m));
    let outcome = Outcome {
        model: admitted.model.clone(),
        usage: Some(&usage),
        cost: price.as_ref().map_or(Decimal::ZERO, |p| p.cost(&usage)),
        priced: price.is_some(),
        status_code: 0,
        latency_ms: 0,
        usage_source: UsageSource::Estimated,
    };
    cost_record(admitted.clone(), outcome)
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
