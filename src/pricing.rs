//! Model price list: loading and validating prices, resolving a reported model name to its
//! entry, and turning normalized token counts into an exact `Decimal` cost (SPEC §5).
//!
//! The shipped list is `config/pricing.toml`, compiled in. Prices are USD per million tokens,
//! written as decimal strings so that no float ever touches them.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::usage::Usage;

#[cfg(test)]
mod tests;

/// The price list compiled into the binary.
const SHIPPED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/pricing.toml"));

/// Prices are quoted per this many tokens.
const PER_TOKENS: u64 = 1_000_000;

/// One tier of prices, USD per million tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prices {
    /// Uncached input tokens.
    pub input: Decimal,
    /// Input tokens read from a prompt cache; `None` = billed at `input`.
    pub cached_input: Option<Decimal>,
    /// Input tokens written to a (5-minute) cache; `None` = billed at `input`.
    pub cache_write: Option<Decimal>,
    /// Input tokens written to a 1-hour cache; `None` = billed at `input`.
    pub cache_write_1h: Option<Decimal>,
    /// Output tokens, reasoning included.
    pub output: Decimal,
}

/// A validated price entry for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// Model name as providers report it.
    pub name: String,
    /// Configured provider name this entry is restricted to (`None` = any provider).
    pub provider: Option<String>,
    /// Other exact names for the model.
    pub aliases: Vec<String>,
    /// Prices for requests at or below the long-context threshold.
    pub base: Prices,
    /// `(threshold_input_tokens, prices)`: above the threshold the whole request uses these
    /// prices; fields the file left out are already filled in from `base`.
    pub long_context: Option<(u64, Prices)>,
    /// Where the price comes from.
    pub source: Option<String>,
    /// Date of the source.
    pub date: Option<String>,
    /// How far the price is trusted (`high`, `medium`, `low`).
    pub confidence: Option<String>,
    /// Who sells the model (`openai`, `anthropic`, `gemini`, `deepseek`, ...).
    pub vendor: Option<String>,
}

/// Errors from loading or validating prices; messages name the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The text is not a valid price file.
    #[error("pricing file: {0}")]
    Toml(#[from] toml::de::Error),
    /// A price is not a decimal number.
    #[error("{entry}: `{field}` = {value:?} is not a decimal number")]
    NotDecimal { entry: String, field: &'static str, value: String },
    /// A price is negative.
    #[error("{entry}: `{field}` = {value:?} is negative")]
    Negative { entry: String, field: &'static str, value: String },
    /// A required text field is empty.
    #[error("{entry}: `{field}` must not be empty")]
    Empty { entry: String, field: &'static str },
    /// Two entries (with the same provider restriction) claim the same model name.
    #[error("{entry}: `{field}` {name:?} is already listed by another entry")]
    Duplicate { entry: String, field: &'static str, name: String },
}

/// Serde shape of one price entry: a `[[models]]` table in the price file, or a
/// `[[pricing.models]]` table in the main config. Prices are decimal strings.
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
    /// Prices for the whole request when its input exceeds a threshold.
    pub long_context: Option<RawLongContext>,
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
}

/// Serde shape of a `long_context` table; absent prices fall back to the base tier's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongContext {
    /// The tier applies when a request's input tokens exceed this.
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
}

/// Serde shape of a whole price file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceFile {
    #[serde(default)]
    models: Vec<RawModelPrice>,
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
        let base = Prices {
            input: price(&entry, "input", &self.input)?,
            cached_input: opt_price(&entry, "cached_input", self.cached_input.as_deref())?,
            cache_write: opt_price(&entry, "cache_write", self.cache_write.as_deref())?,
            cache_write_1h: opt_price(&entry, "cache_write_1h", self.cache_write_1h.as_deref())?,
            output: price(&entry, "output", &self.output)?,
        };
        let long_context = match self.long_context {
            None => None,
            Some(lc) => {
                let tier = Prices {
                    input: opt_price(&entry, "long_context.input", lc.input.as_deref())?
                        .unwrap_or(base.input),
                    cached_input: opt_price(&entry, "long_context.cached_input", lc.cached_input.as_deref())?
                        .or(base.cached_input),
                    cache_write: opt_price(&entry, "long_context.cache_write", lc.cache_write.as_deref())?
                        .or(base.cache_write),
                    cache_write_1h: opt_price(
                        &entry,
                        "long_context.cache_write_1h",
                        lc.cache_write_1h.as_deref(),
                    )?
                    .or(base.cache_write_1h),
                    output: opt_price(&entry, "long_context.output", lc.output.as_deref())?
                        .unwrap_or(base.output),
                };
                Some((lc.threshold_input_tokens, tier))
            }
        };
        Ok(ModelPrice {
            name: self.name,
            provider: self.provider,
            aliases: self.aliases,
            base,
            long_context,
            source: self.source,
            date: self.date,
            confidence: self.confidence,
            vendor: self.vendor,
        })
    }
}

/// Parses one required price.
fn price(entry: &str, field: &'static str, text: &str) -> Result<Decimal, PricingError> {
    let value = Decimal::from_str_exact(text.trim()).map_err(|_| PricingError::NotDecimal {
        entry: entry.to_owned(),
        field,
        value: text.to_owned(),
    })?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(PricingError::Negative { entry: entry.to_owned(), field, value: text.to_owned() });
    }
    Ok(value.normalize())
}

/// Parses one optional price.
fn opt_price(entry: &str, field: &'static str, text: Option<&str>) -> Result<Option<Decimal>, PricingError> {
    text.map(|t| price(entry, field, t)).transpose()
}

impl ModelPrice {
    /// The prices that apply to a request with this many input tokens (all input, cache included).
    pub fn tier(&self, input_tokens: u64) -> &Prices {
        match &self.long_context {
            Some((threshold, prices)) if input_tokens > *threshold => prices,
            _ => &self.base,
        }
    }

    /// Exact cost in USD of one request's normalized usage.
    pub fn cost(&self, usage: &Usage) -> Decimal {
        let p = self.tier(usage.input_tokens);
        let cached = usage.cached_input_tokens;
        let write = usage.cache_write_tokens;
        let write_1h = usage.cache_write_1h_tokens.min(write);
        let uncached = usage.input_tokens.saturating_sub(cached).saturating_sub(write);
        let terms = [
            (uncached, p.input),
            (cached, p.cached_input.unwrap_or(p.input)),
            (write - write_1h, p.cache_write.unwrap_or(p.input)),
            (write_1h, p.cache_write_1h.unwrap_or(p.input)),
            (usage.output_tokens, p.output),
        ];
        let total = terms.iter().fold(Decimal::ZERO, |sum, &(n, price)| {
            sum.saturating_add(Decimal::from(n).saturating_mul(price))
        });
        (total / Decimal::from(PER_TOKENS)).normalize()
    }

    /// The restriction class this entry belongs to: its provider, or `""` for any provider.
    fn class(&self) -> &str {
        self.provider.as_deref().unwrap_or("")
    }
}

/// How a model name found its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The name or one of its aliases.
    Exact,
    /// The name after dropping a dated-snapshot (or `-latest`) suffix.
    Snapshot,
    /// The longest listed name that is a prefix of the model at a `-` boundary.
    Prefix,
}

/// A resolved price entry and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The entry that prices the request.
    pub price: &'a ModelPrice,
    /// Which resolution step found it.
    pub matched_by: Match,
}

/// All known model prices, indexed for resolution.
#[derive(Debug, Clone)]
pub struct PriceList {
    models: Vec<ModelPrice>,
    /// Restriction class (`""` = unrestricted) -> model name or alias -> index into `models`.
    index: HashMap<String, HashMap<String, usize>>,
}

impl PriceList {
    /// The price list compiled into the binary (`config/pricing.toml`).
    pub fn shipped() -> Result<PriceList, PricingError> {
        Self::from_toml(SHIPPED)
    }

    /// Parses a price file (`[[models]]` tables); a name listed twice for the same provider is an error.
    pub fn from_toml(text: &str) -> Result<PriceList, PricingError> {
        let raw: RawPriceFile = toml::from_str(text)?;
        let models = raw
            .models
            .into_iter()
            .enumerate()
            .map(|(i, m)| m.validate(&format!("models[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen: HashSet<(&str, &str)> = HashSet::new();
        for (i, m) in models.iter().enumerate() {
            let names = std::iter::once(("name", &m.name)).chain(m.aliases.iter().map(|a| ("aliases", a)));
            for (field, name) in names {
                if !seen.insert((m.class(), name)) {
                    let entry = format!("models[{i}] ({})", m.name);
                    return Err(PricingError::Duplicate { entry, field, name: name.clone() });
                }
            }
        }
        Ok(Self::indexed(models))
    }

    /// Applies config entries: one with the same name and provider restriction replaces the
    /// listed entry, others are added. On a name clash, names beat aliases and later entries win.
    pub fn with_overrides(self, overrides: Vec<ModelPrice>) -> PriceList {
        let mut models = self.models;
        for o in overrides {
            match models.iter_mut().find(|m| m.name == o.name && m.provider == o.provider) {
                Some(slot) => *slot = o,
                None => models.push(o),
            }
        }
        Self::indexed(models)
    }

    /// The highest input and output prices (any tier) among the entries `include` picks by
    /// vendor: what a request whose model cannot be priced is estimated at, so it cannot
    /// pass a hard budget with a zero reservation.
    pub fn highest(&self, include: impl Fn(Option<&str>) -> bool) -> Option<(Decimal, Decimal)> {
        self.models
            .iter()
            .filter(|m| include(m.vendor.as_deref()))
            .flat_map(|m| std::iter::once(&m.base).chain(m.long_context.as_ref().map(|(_, p)| p)))
            .map(|p| (p.input, p.output))
            .reduce(|(i, o), (pi, po)| (i.max(pi), o.max(po)))
    }

    /// Every entry, in file order (overrides that added a model come last).
    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// Finds the entry pricing `model` served by the provider configured as `provider`: exact
    /// name or alias, then without a snapshot suffix, then the longest prefix at a `-`. At each
    /// step an entry restricted to `provider` wins over an unrestricted one.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<Resolved<'_>> {
        let found = |i: usize, matched_by| Resolved { price: &self.models[i], matched_by };
        if let Some(i) = self.lookup(provider, model) {
            return Some(found(i, Match::Exact));
        }
        if let Some(i) = strip_snapshot(model).and_then(|base| self.lookup(provider, base)) {
            return Some(found(i, Match::Snapshot));
        }
        model
            .rmatch_indices('-')
            .find_map(|(at, _)| self.lookup(provider, &model[..at]))
            .map(|i| found(i, Match::Prefix))
    }

    /// Exact name-or-alias lookup, provider-restricted entries first.
    fn lookup(&self, provider: &str, name: &str) -> Option<usize> {
        let restricted = if provider.is_empty() { None } else { self.index.get(provider) };
        restricted.and_then(|m| m.get(name)).or_else(|| self.index.get("").and_then(|m| m.get(name))).copied()
    }

    /// Builds the name index: aliases first, then names, so a name beats an alias and a later
    /// entry beats an earlier one.
    fn indexed(models: Vec<ModelPrice>) -> PriceList {
        let mut index: HashMap<String, HashMap<String, usize>> = HashMap::new();
        for names_pass in [false, true] {
            for (i, m) in models.iter().enumerate() {
                let class = index.entry(m.class().to_owned()).or_default();
                if names_pass {
                    class.insert(m.name.clone(), i);
                } else {
                    class.extend(m.aliases.iter().map(|a| (a.clone(), i)));
                }
            }
        }
        PriceList { models, index }
    }
}

/// The model name without a dated-snapshot suffix (`-YYYY-MM-DD`, `-YYYYMMDD`) or `-latest`.
fn strip_snapshot(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (head, tail) = model.rsplit_once('-')?;
    if tail.len() == 8 && digits(tail) {
        return Some(head);
    }
    // `-YYYY-MM-DD`: the last three '-'-separated parts are 4, 2 and 2 digits.
    let (head, day) = (head, tail);
    let (head, month) = head.rsplit_once('-')?;
    let (head, year) = head.rsplit_once('-')?;
    let dated = year.len() == 4 && month.len() == 2 && day.len() == 2;
    (dated && digits(year) && digits(month) && digits(day)).then_some(head)
}
