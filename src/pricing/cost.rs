//! What a response costs: the service tier it reports selects a rate table (keys the table
//! lacks are the entry's own), long-context rates apply above their threshold, audio tokens
//! have their own rates, server-side tool calls a fee per 1,000, and the inference geo a
//! factor on the token cost, never on the fees (corpus `_meta.cost_formula`). Also what a
//! request may cost at most, for admission.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::{ModelPrice, Prices, Tier};
use crate::usage::Usage;

/// Token prices are quoted per this many tokens.
const PER_TOKENS: u64 = 1_000_000;

/// Tool fees are quoted per this many calls.
const PER_CALLS: u64 = 1_000;

/// The request's own tier value that leaves the choice to the account's default.
const AUTO: &str = "auto";

/// No tier aliases.
static NO_ALIASES: BTreeMap<String, String> = BTreeMap::new();

/// What the admission estimate knows of a request before it is sent: the most it can use,
/// and what it asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask<'a> {
    /// Most input tokens it can have.
    pub input_tokens: u64,
    /// Most output tokens it can produce.
    pub output_tokens: u64,
    /// Most server-side web searches it can run.
    pub web_search_calls: u64,
    /// Most server-side web fetches it can run.
    pub web_fetch_calls: u64,
    /// The tier it asks for; `None` or `auto` leave it to the account's default.
    pub service_tier: Option<&'a str>,
    /// The region it asks to be served in; `None` leaves it to the account's default.
    pub inference_geo: Option<&'a str>,
    /// The body carries audio input.
    pub audio_input: bool,
    /// The answer may be audio.
    pub audio_output: bool,
}

impl ModelPrice {
    /// The table a reported tier selects: the model's own table of that name, else the one
    /// an alias names; `None` means the base rates (e.g. `default`, `standard`).
    pub fn service_tier(&self, name: &str, aliases: &BTreeMap<String, String>) -> Option<&Tier> {
        self.service_tiers.get(name).or_else(|| aliases.get(name).and_then(|t| self.service_tiers.get(t)))
    }

    /// The rates of `tier` (`None` = base) for a request with this many input tokens (all
    /// input, cache included): above a long-context threshold the whole request uses the
    /// long-context rates, the tier's own if it has them, else the entry's.
    pub fn rates<'a>(&'a self, tier: Option<&'a Tier>, input_tokens: u64) -> &'a Prices {
        let above = |lc| long(lc).filter(|(threshold, _)| input_tokens > **threshold).map(|(_, p)| p);
        match tier {
            None => above(&self.long_context).unwrap_or(&self.base),
            Some(t) if t.long_context.is_some() => above(&t.long_context).unwrap_or(&t.rates),
            Some(t) => above(&self.long_context).unwrap_or(&t.rates),
        }
    }

    /// Exact cost in USD of one response's usage; the reported tier is looked up by its own
    /// name only (see [`super::Resolved::cost`] for the list's aliases).
    pub fn cost(&self, usage: &Usage) -> Decimal {
        self.cost_with(usage, &NO_ALIASES)
    }

    pub(super) fn cost_with(&self, usage: &Usage, aliases: &BTreeMap<String, String>) -> Decimal {
        let tier = usage.service_tier.as_deref().and_then(|t| self.service_tier(t, aliases));
        let geo = usage.inference_geo.as_deref().and_then(|g| self.inference_geo.get(g)).copied();
        self.priced(tier, geo.unwrap_or(Decimal::ONE), usage)
    }

    /// `geo * tokens / 1e6 + fees`, the tokens at `tier`'s rates.
    fn priced(&self, tier: Option<&Tier>, geo: Decimal, usage: &Usage) -> Decimal {
        let tokens = token_cost(self.rates(tier, usage.input_tokens), usage);
        let fees = fee(usage.web_search_requests, self.web_search_per_1k)
            .saturating_add(fee(usage.web_fetch_requests, self.web_fetch_per_1k));
        (geo.saturating_mul(tokens) / Decimal::from(PER_TOKENS)).saturating_add(fees).normalize()
    }

    /// The most `ask` can cost. The response, not the request, names the tier, so the bound
    /// covers the base rates and the tier asked for; with `auto` or no tier (an account may
    /// default to any tier, e.g. an OpenAI Project set to Priority) every table of the model.
    /// The geo factor is the one asked for, else the model's largest. Audio is priced at the
    /// higher of its own and the text rate.
    pub(super) fn upper_bound(&self, ask: &Ask<'_>, aliases: &BTreeMap<String, String>) -> Decimal {
        let geo = match ask.inference_geo {
            Some(g) => self.inference_geo.get(g).copied().unwrap_or(Decimal::ONE),
            None => self.inference_geo.values().copied().fold(Decimal::ONE, Decimal::max),
        };
        let bound = |tier: Option<&Tier>| {
            let p = self.rates(tier, ask.input_tokens);
            let dearer = |audio: Option<Decimal>, text: Decimal| audio.is_some_and(|a| a > text);
            let usage = Usage {
                input_tokens: ask.input_tokens,
                output_tokens: ask.output_tokens,
                audio_input_tokens: (ask.audio_input && dearer(p.input_audio, p.input))
                    .then_some(ask.input_tokens),
                audio_output_tokens: (ask.audio_output && dearer(p.output_audio, p.output))
                    .then_some(ask.output_tokens),
                web_search_requests: Some(ask.web_search_calls),
                web_fetch_requests: Some(ask.web_fetch_calls),
                ..Usage::default()
            };
            self.priced(tier, geo, &usage)
        };
        let mut worst = bound(None);
        match ask.service_tier.filter(|t| *t != AUTO) {
            Some(asked) => {
                if let Some(tier) = self.service_tier(asked, aliases) {
                    worst = worst.max(bound(Some(tier)));
                }
            }
            None => {
                for tier in self.service_tiers.values() {
                    worst = worst.max(bound(Some(tier)));
                }
            }
        }
        worst
    }

    /// Every rate table of the entry: base, long context, each tier and its long context.
    fn tables(&self) -> impl Iterator<Item = &Prices> {
        let rates = |lc| long(lc).map(|(_, p)| p);
        std::iter::once(&self.base).chain(rates(&self.long_context)).chain(
            self.service_tiers
                .values()
                .flat_map(move |t| std::iter::once(&t.rates).chain(rates(&t.long_context))),
        )
    }
}

/// A long-context table as a pair of references.
fn long(lc: &Option<(u64, Prices)>) -> Option<(&u64, &Prices)> {
    lc.as_ref().map(|(threshold, p)| (threshold, p))
}

/// Per million tokens: every part of the usage at its rate, fallbacks applied. Counts that
/// contradict each other (more cached than input, say) never underflow.
fn token_cost(p: &Prices, u: &Usage) -> Decimal {
    let cached = u.cached_input_tokens;
    let write = u.cache_write_tokens;
    let write_1h = u.cache_write_1h_tokens.min(write);
    let audio_in = u.audio_input_tokens.unwrap_or(0).min(u.input_tokens);
    let audio_out = u.audio_output_tokens.unwrap_or(0).min(u.output_tokens);
    let text_in = u.input_tokens.saturating_sub(cached).saturating_sub(write).saturating_sub(audio_in);
    let terms = [
        (text_in, p.input),
        (cached, p.cached_input.unwrap_or(p.input)),
        (write - write_1h, p.cache_write.unwrap_or(p.input)),
        (write_1h, p.cache_write_1h.unwrap_or(p.input)),
        (audio_in, p.input_audio.unwrap_or(p.input)),
        (u.output_tokens - audio_out, p.output),
        (audio_out, p.output_audio.unwrap_or(p.output)),
    ];
    terms
        .iter()
        .fold(Decimal::ZERO, |sum, &(n, price)| sum.saturating_add(Decimal::from(n).saturating_mul(price)))
}

/// `calls * per_1k / 1000`; no calls or no fee cost nothing.
fn fee(calls: Option<u64>, per_1k: Option<Decimal>) -> Decimal {
    match (calls, per_1k) {
        (Some(n), Some(per_1k)) => Decimal::from(n).saturating_mul(per_1k) / Decimal::from(PER_CALLS),
        _ => Decimal::ZERO,
    }
}

/// A made-up entry at the highest rate of each kind, the highest fees and the highest factor
/// per geo among `models`: what a request whose model cannot be priced is bounded with.
pub(super) fn ceiling(models: &[&ModelPrice]) -> Option<ModelPrice> {
    let tables = || models.iter().flat_map(|m| m.tables());
    let max = |f: &dyn Fn(&Prices) -> Decimal| tables().map(f).max();
    let base = Prices {
        input: max(&|p| p.input)?,
        cached_input: None,
        cache_write: None,
        cache_write_1h: None,
        output: max(&|p| p.output)?,
        input_audio: max(&|p| p.input_audio.unwrap_or(p.input)),
        output_audio: max(&|p| p.output_audio.unwrap_or(p.output)),
    };
    let mut inference_geo: BTreeMap<String, Decimal> = BTreeMap::new();
    for (geo, factor) in models.iter().flat_map(|m| &m.inference_geo) {
        let slot = inference_geo.entry(geo.clone()).or_insert(*factor);
        *slot = (*slot).max(*factor);
    }
    Some(ModelPrice {
        name: "(highest listed prices)".into(),
        provider: None,
        aliases: Vec::new(),
        base,
        long_context: None,
        service_tiers: BTreeMap::new(),
        web_search_per_1k: models.iter().filter_map(|m| m.web_search_per_1k).max(),
        web_fetch_per_1k: models.iter().filter_map(|m| m.web_fetch_per_1k).max(),
        inference_geo,
        source: None,
        date: None,
        confidence: None,
        vendor: None,
        service_tiers_source: None,
        server_tools_source: None,
        inference_geo_source: None,
    })
}
