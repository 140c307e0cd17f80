//! Model price list: loading and validating prices, resolving a reported model name to its
//! entry, and turning normalized usage into an exact `Decimal` cost (SPEC §5).
//!
//! The shipped list is `config/pricing.toml`, compiled in. Prices are USD per million tokens,
//! written as decimal strings so that no float ever touches them.
//!
//! * `raw`: the serde shapes of an entry and their validation.
//! * `cost`: which rates apply (service tier, long context) and the cost formula, including
//!   audio rates, server-side tool fees and the inference-geo factor; the admission upper bound.

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_decimal::Decimal;

use crate::usage::Usage;

mod cost;
mod raw;
#[cfg(test)]
mod tests;

pub use cost::Ask;
pub use raw::{RawLongContext, RawModelPrice, RawTier};

/// The price list compiled into the binary.
const SHIPPED: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/pricing.toml"));

/// One table of rates, USD per million tokens.
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
    /// Audio input tokens (a part of the input); `None` = billed at `input`.
    pub input_audio: Option<Decimal>,
    /// Audio output tokens (a part of the output); `None` = billed at `output`.
    pub output_audio: Option<Decimal>,
}

/// The rates of one service tier: the entry's rates overlaid with the tier's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Rates at or below the long-context threshold.
    pub rates: Prices,
    /// The tier's own long-context rates; without them the entry's apply above its threshold.
    pub long_context: Option<(u64, Prices)>,
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
    /// Rate tables by the tier name a response reports; fields already filled in from `base`.
    pub service_tiers: BTreeMap<String, Tier>,
    /// USD per 1,000 server-side web search calls (`None` = no fee).
    pub web_search_per_1k: Option<Decimal>,
    /// USD per 1,000 server-side web fetch calls (`None` = no fee).
    pub web_fetch_per_1k: Option<Decimal>,
    /// Factor on the token cost by reported `inference_geo` (absent = 1).
    pub inference_geo: BTreeMap<String, Decimal>,
    /// Where the price comes from.
    pub source: Option<String>,
    /// Date of the source.
    pub date: Option<String>,
    /// How far the price is trusted (`high`, `medium`, `low`).
    pub confidence: Option<String>,
    /// Who sells the model (`openai`, `anthropic`, `gemini`, `deepseek`, ...).
    pub vendor: Option<String>,
    /// Where the tier tables come from.
    pub service_tiers_source: Option<String>,
    /// Where the server-side tool fees come from.
    pub server_tools_source: Option<String>,
    /// Where the inference-geo factors come from.
    pub inference_geo_source: Option<String>,
}

/// Errors from loading or validating prices; messages name the entry and the field.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The text is not a valid price file.
    #[error("pricing file: {0}")]
    Toml(#[from] toml::de::Error),
    /// A price is not a decimal number.
    #[error("{entry}: `{field}` = {value:?} is not a decimal number")]
    NotDecimal { entry: String, field: String, value: String },
    /// A price is negative.
    #[error("{entry}: `{field}` = {value:?} is negative")]
    Negative { entry: String, field: String, value: String },
    /// A required text field is empty.
    #[error("{entry}: `{field}` must not be empty")]
    Empty { entry: String, field: &'static str },
    /// Two entries (with the same provider restriction) claim the same model name.
    #[error("{entry}: `{field}` {name:?} is already listed by another entry")]
    Duplicate { entry: String, field: &'static str, name: String },
}

impl ModelPrice {
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
    /// The list's tier aliases (a reported name that means another tier's table).
    pub tier_aliases: &'a BTreeMap<String, String>,
}

impl Resolved<'_> {
    /// Exact cost in USD of one response's usage (its reported tier through the aliases).
    pub fn cost(&self, usage: &Usage) -> Decimal {
        self.price.cost_with(usage, self.tier_aliases)
    }

    /// The admission estimate of a request: an upper bound of what it can cost.
    pub fn upper_bound(&self, ask: &Ask<'_>) -> Decimal {
        self.price.upper_bound(ask, self.tier_aliases)
    }
}

/// All known model prices, indexed for resolution.
#[derive(Debug, Clone)]
pub struct PriceList {
    models: Vec<ModelPrice>,
    /// Restriction class (`""` = unrestricted) -> model name or alias -> index into `models`.
    index: HashMap<String, HashMap<String, usize>>,
    /// Reported tier name -> the tier whose table it means, when a model has no table of its own
    /// under that name.
    tier_aliases: BTreeMap<String, String>,
}

impl PriceList {
    /// The price list compiled into the binary (`config/pricing.toml`).
    pub fn shipped() -> Result<PriceList, PricingError> {
        Self::from_toml(SHIPPED)
    }

    /// Parses a price file (`[[models]]` tables, `[service_tier_aliases]`); a name listed twice
    /// for the same provider is an error.
    pub fn from_toml(text: &str) -> Result<PriceList, PricingError> {
        let raw: raw::RawPriceFile = toml::from_str(text)?;
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
        Ok(Self::indexed(models, raw.service_tier_aliases))
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
        Self::indexed(models, self.tier_aliases)
    }

    /// The admission estimate of a request whose model cannot be priced: an upper bound at the
    /// highest rates, fees and factors (any tier, long context included) among the entries
    /// `include` picks by vendor, so it cannot pass a hard budget with a zero reservation.
    /// `None` when no entry is picked.
    pub fn ceiling_bound(&self, include: impl Fn(Option<&str>) -> bool, ask: &Ask<'_>) -> Option<Decimal> {
        let picked: Vec<&ModelPrice> = self.models.iter().filter(|m| include(m.vendor.as_deref())).collect();
        cost::ceiling(&picked).map(|c| c.upper_bound(ask, &self.tier_aliases))
    }

    /// Every entry, in file order (overrides that added a model come last).
    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// Finds the entry pricing `model` served by the provider configured as `provider`: exact
    /// name or alias, then without a snapshot suffix, then the longest prefix at a `-`. At each
    /// step an entry restricted to `provider` wins over an unrestricted one.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<Resolved<'_>> {
        let found = |i: usize, matched_by| Resolved {
            price: &self.models[i],
            matched_by,
            tier_aliases: &self.tier_aliases,
        };
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
    fn indexed(models: Vec<ModelPrice>, tier_aliases: BTreeMap<String, String>) -> PriceList {
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
        PriceList { models, index, tier_aliases }
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
