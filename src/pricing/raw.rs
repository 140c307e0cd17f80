//! The serde shapes of a price entry (a `[[models]]` table of the price file, or a
//! `[[pricing.models]]` table of the config) and their validation into [`ModelPrice`].
//!
//! Prices are decimal strings, so that no float ever touches them; unknown fields are
//! errors, at every level (a tier table, a long-context table).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{ModelPrice, Prices, PricingError, Tier};

/// Serde shape of one price entry. Prices are USD per million tokens, fees USD per 1,000 calls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelPrice {
    /// Model name as providers report it.
    pub name: String,
    /// Restrict the entry to the configured provider with this name.
    pub provider: Option<String>,
    /// Other exact names for the model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// USD per million uncached input tokens.
    pub input: String,
    /// USD per million cache-read input tokens (default: `input`).
    pub cached_input: Option<String>,
    /// USD per million (5-minute) cache-write input tokens (default: `input`).
    pub cache_write: Option<String>,
    /// USD per million 1-hour cache-write input tokens (default: `input`).
    pub cache_write_1h: Option<String>,
    /// USD per million output tokens, reasoning included.
    pub output: String,
    /// USD per million audio input tokens (default: `input`).
    pub input_audio: Option<String>,
    /// USD per million audio output tokens (default: `output`).
    pub output_audio: Option<String>,
    /// Prices for the whole request when its input exceeds a threshold.
    pub long_context: Option<RawLongContext>,
    /// Rate tables by the tier name a response reports (`flex`, `priority`, `batch`, ...).
    #[serde(default)]
    pub service_tiers: BTreeMap<String, RawTier>,
    /// USD per 1,000 server-side web search calls (default: no fee).
    pub web_search_per_1k: Option<String>,
    /// USD per 1,000 server-side web fetch calls (default: no fee).
    pub web_fetch_per_1k: Option<String>,
    /// Factors on the token cost by the `inference_geo` a response reports (default: 1).
    #[serde(default)]
    pub inference_geo: BTreeMap<String, String>,
    /// Where the price comes from.
    pub source: Option<String>,
    /// Date of the source.
    pub date: Option<String>,
    /// `high`, `medium` or `low`.
    pub confidence: Option<String>,
    /// Free-form remarks.
    pub notes: Option<String>,
    /// Who sells the model (informational).
    pub vendor: Option<String>,
    /// Where the tier tables come from, with dates and confidence (informational).
    pub service_tiers_source: Option<String>,
    /// Where the server-side tool fees come from (informational).
    pub server_tools_source: Option<String>,
    /// Where the inference-geo factors come from (informational).
    pub inference_geo_source: Option<String>,
}

/// Serde shape of a `long_context` table; absent prices fall back to the enclosing table's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongContext {
    /// The table applies when a request's input tokens exceed this.
    pub threshold_input_tokens: u64,
    /// USD per million uncached input tokens.
    pub input: Option<String>,
    /// USD per million cache-read input tokens.
    pub cached_input: Option<String>,
    /// USD per million (5-minute) cache-write input tokens.
    pub cache_write: Option<String>,
    /// USD per million 1-hour cache-write input tokens.
    pub cache_write_1h: Option<String>,
    /// USD per million output tokens.
    pub output: Option<String>,
    /// USD per million audio input tokens.
    pub input_audio: Option<String>,
    /// USD per million audio output tokens.
    pub output_audio: Option<String>,
}

/// Serde shape of a `service_tiers.<name>` table: the rate fields of the entry, each
/// falling back to the entry's own when absent, and optionally the tier's long context.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    /// USD per million uncached input tokens.
    pub input: Option<String>,
    /// USD per million cache-read input tokens.
    pub cached_input: Option<String>,
    /// USD per million (5-minute) cache-write input tokens.
    pub cache_write: Option<String>,
    /// USD per million 1-hour cache-write input tokens.
    pub cache_write_1h: Option<String>,
    /// USD per million output tokens.
    pub output: Option<String>,
    /// USD per million audio input tokens.
    pub input_audio: Option<String>,
    /// USD per million audio output tokens.
    pub output_audio: Option<String>,
    /// The tier's own long-context rates (else the entry's apply above its threshold).
    pub long_context: Option<RawLongContext>,
}

/// Serde shape of a whole price file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPriceFile {
    #[serde(default)]
    pub(super) models: Vec<RawModelPrice>,
    /// Reported tier names that mean another tier's table (e.g. OpenAI `fast` = `priority`).
    #[serde(default)]
    pub(super) service_tier_aliases: BTreeMap<String, String>,
}

/// The rate fields every table has, all optional: an overlay on an enclosing table.
struct Overlay<'a> {
    input: Option<&'a str>,
    cached_input: Option<&'a str>,
    cache_write: Option<&'a str>,
    cache_write_1h: Option<&'a str>,
    output: Option<&'a str>,
    input_audio: Option<&'a str>,
    output_audio: Option<&'a str>,
}

impl RawLongContext {
    fn overlay(&self) -> Overlay<'_> {
        Overlay {
            input: self.input.as_deref(),
            cached_input: self.cached_input.as_deref(),
            cache_write: self.cache_write.as_deref(),
            cache_write_1h: self.cache_write_1h.as_deref(),
            output: self.output.as_deref(),
            input_audio: self.input_audio.as_deref(),
            output_audio: self.output_audio.as_deref(),
        }
    }
}

impl RawTier {
    fn overlay(&self) -> Overlay<'_> {
        Overlay {
            input: self.input.as_deref(),
            cached_input: self.cached_input.as_deref(),
            cache_write: self.cache_write.as_deref(),
            cache_write_1h: self.cache_write_1h.as_deref(),
            output: self.output.as_deref(),
            input_audio: self.input_audio.as_deref(),
            output_audio: self.output_audio.as_deref(),
        }
    }
}

impl Overlay<'_> {
    /// The table's prices, each absent field taken from `under`; `at` (e.g.
    /// `service_tiers.flex.`) prefixes the field names in errors.
    fn over(&self, under: &Prices, entry: &str, at: &str) -> Result<Prices, PricingError> {
        let get = |field: &str, text: Option<&str>| opt_price(entry, &format!("{at}{field}"), text);
        Ok(Prices {
            input: get("input", self.input)?.unwrap_or(under.input),
            cached_input: get("cached_input", self.cached_input)?.or(under.cached_input),
            cache_write: get("cache_write", self.cache_write)?.or(under.cache_write),
            cache_write_1h: get("cache_write_1h", self.cache_write_1h)?.or(under.cache_write_1h),
            output: get("output", self.output)?.unwrap_or(under.output),
            input_audio: get("input_audio", self.input_audio)?.or(under.input_audio),
            output_audio: get("output_audio", self.output_audio)?.or(under.output_audio),
        })
    }
}

/// A long-context table over the table it belongs to.
fn long_context(
    raw: Option<&RawLongContext>,
    under: &Prices,
    entry: &str,
    at: &str,
) -> Result<Option<(u64, Prices)>, PricingError> {
    raw.map(|lc| Ok((lc.threshold_input_tokens, lc.overlay().over(under, entry, at)?))).transpose()
}

impl RawModelPrice {
    /// Checks the entry and parses its prices; `path` (e.g. `pricing.models[2]`) names it in errors.
    pub fn validate(self, path: &str) -> Result<ModelPrice, PricingError> {
        let entry = if self.name.is_empty() { path.to_owned() } else { format!("{path} ({})", self.name) };
        let empty = |field| PricingError::Empty { entry: entry.clone(), field };
        if self.name.trim().is_empty() {
            return Err(empty("name"));
        }
        if self.provider.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(empty("provider"));
        }
        if self.aliases.iter().any(|a| a.trim().is_empty()) {
            return Err(empty("aliases"));
        }
        if self.service_tiers.keys().any(|t| t.trim().is_empty()) {
            return Err(empty("service_tiers"));
        }
        if self.inference_geo.keys().any(|g| g.trim().is_empty()) {
            return Err(empty("inference_geo"));
        }
        let base = Prices {
            input: price(&entry, "input", &self.input)?,
            cached_input: opt_price(&entry, "cached_input", self.cached_input.as_deref())?,
            cache_write: opt_price(&entry, "cache_write", self.cache_write.as_deref())?,
            cache_write_1h: opt_price(&entry, "cache_write_1h", self.cache_write_1h.as_deref())?,
            output: price(&entry, "output", &self.output)?,
            input_audio: opt_price(&entry, "input_audio", self.input_audio.as_deref())?,
            output_audio: opt_price(&entry, "output_audio", self.output_audio.as_deref())?,
        };
        let long = long_context(self.long_context.as_ref(), &base, &entry, "long_context.")?;
        let mut service_tiers = BTreeMap::new();
        for (name, raw) in &self.service_tiers {
            let at = format!("service_tiers.{name}.");
            let rates = raw.overlay().over(&base, &entry, &at)?;
            let own = long_context(raw.long_context.as_ref(), &rates, &entry, &format!("{at}long_context."))?;
            service_tiers.insert(name.clone(), Tier { rates, long_context: own });
        }
        let mut inference_geo = BTreeMap::new();
        for (geo, factor) in &self.inference_geo {
            inference_geo.insert(geo.clone(), price(&entry, &format!("inference_geo.{geo}"), factor)?);
        }
        Ok(ModelPrice {
            web_search_per_1k: opt_price(&entry, "web_search_per_1k", self.web_search_per_1k.as_deref())?,
            web_fetch_per_1k: opt_price(&entry, "web_fetch_per_1k", self.web_fetch_per_1k.as_deref())?,
            name: self.name,
            provider: self.provider,
            aliases: self.aliases,
            base,
            long_context: long,
            service_tiers,
            inference_geo,
            source: self.source,
            date: self.date,
            confidence: self.confidence,
            vendor: self.vendor,
            service_tiers_source: self.service_tiers_source,
            server_tools_source: self.server_tools_source,
            inference_geo_source: self.inference_geo_source,
        })
    }
}

/// Parses one required price (or fee, or factor): a non-negative decimal string.
fn price(entry: &str, field: &str, text: &str) -> Result<Decimal, PricingError> {
    let value = Decimal::from_str_exact(text.trim()).map_err(|_| PricingError::NotDecimal {
        entry: entry.to_owned(),
        field: field.to_owned(),
        value: text.to_owned(),
    })?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(PricingError::Negative {
            entry: entry.to_owned(),
            field: field.to_owned(),
            value: text.to_owned(),
        });
    }
    Ok(value.normalize())
}

/// Parses one optional price.
fn opt_price(entry: &str, field: &str, text: Option<&str>) -> Result<Option<Decimal>, PricingError> {
    text.map(|t| price(entry, field, t)).transpose()
}
