//! Per-request metering: the admission estimate from what the request says
//! ([`super::facts`]), and the settle step that prices what the observer saw and hands
//! exactly one cost record to the ledger.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use dashmap::DashSet;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::facts::RequestFacts;
use crate::budget::Admission;
use crate::config::Provider;
use crate::journal::{Admitted, JournalError};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::pricing::{Ask, PriceList};
use crate::provider::ProviderKind;
use crate::store::{CostRecord, Identity, UsageSource};
use crate::usage::observer::{End, Observation};
use crate::usage::{Api, Usage};

/// The admission estimate, an upper bound of the request's cost: input tokens bounded by the
/// body's bytes (no tokenizer emits more tokens than UTF-8 bytes of text), output at the
/// request's cap, server-side tool calls at what its tools allow, priced with the model's
/// prices at the dearest of the tiers the response may report, audio at the higher of its
/// own and the text rate, and the geo factor asked for (see [`Ask`]). A model that cannot be
/// known or priced (an Azure deployment path, a tuned model, a body that is not JSON, a
/// name over [`MAX_MODEL_BYTES`](super::facts::MAX_MODEL_BYTES)) is
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
    prices.ceiling_bound(|vendor| ProviderKind::of_vendor(vendor) == kind, &ask).unwrap_or(Decimal::ZERO)
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
