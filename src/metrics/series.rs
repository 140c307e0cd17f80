//! The labelled series of requests, tokens and cost: registered once per (provider, model
//! label) and kept, so counting a request is a map lookup by the name it gave and a few
//! atomic adds, never a label set hashed in the recorder. The model label is bounded: a
//! model the price list resolves is labelled with the price list's name for it, any other
//! name with itself while fewer than [`MAX_OTHER_MODELS`] such names were seen, then
//! [`OTHER`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use dashmap::DashMap;
use metrics::{Counter, Gauge, Label};
use rust_decimal::Decimal;

use super::{Registry, COST, REQUESTS, TOKENS, UNPRICED};
use crate::pricing::PriceList;
use crate::sync::{lock, read, write};

/// Model names outside the price list that get a label of their own, across providers.
pub const MAX_OTHER_MODELS: usize = 100;
/// The label of every model name past [`MAX_OTHER_MODELS`], or not fit to be shown.
pub const OTHER: &str = "other";
/// The label when no model is known (unmetered requests, refusals before the body is read);
/// also the provider label of a request no provider was routed to.
pub const NONE: &str = "none";
/// Longest model name shown as a label.
const MAX_LABEL_CHARS: usize = 100;
/// Model names as sent remembered per provider for the fast lookup; past it a name is
/// mapped to its label on every request (still correct, a little slower), so a client
/// inventing names cannot grow memory either.
const MAX_REMEMBERED_NAMES: usize = 1024;

/// The `kind` label values of `tollgate_tokens_total`, in the order of [`token_counts`].
pub const TOKEN_KINDS: [&str; 7] =
    ["input", "cached_input", "cache_write", "output", "reasoning", "audio_input", "audio_output"];

/// A cost record's token counts in [`TOKEN_KINDS`] order (the columns of the same names).
pub fn token_counts(r: &crate::store::CostRecord) -> [Option<u64>; 7] {
    [
        r.input_tokens,
        r.cached_input_tokens,
        r.cache_write_tokens,
        r.output_tokens,
        r.reasoning_tokens,
        r.audio_input_tokens,
        r.audio_output_tokens,
    ]
}

/// The series of one provider and one model label.
pub struct ModelSeries {
    provider: Arc<str>,
    model: Arc<str>,
    /// `tollgate_requests_total` by status, registered as statuses appear (a few per model).
    statuses: RwLock<Vec<(u16, Counter)>>,
    /// `tollgate_tokens_total` by kind, in [`TOKEN_KINDS`] order.
    pub tokens: [Counter; 7],
    /// `tollgate_cost_usd_total` (a gauge: the metrics crate's counters are integers), set
    /// from `cost_total` at scrape time.
    cost: Gauge,
    /// The exact sum of the costs counted: no float touches a cost until it is shown.
    cost_total: Mutex<Decimal>,
    /// `tollgate_unpriced_requests_total{model}`, registered at the first unpriced request.
    unpriced: OnceLock<Counter>,
}

impl ModelSeries {
    fn new(registry: &Registry, provider: &Arc<str>, model: &Arc<str>) -> ModelSeries {
        let labels =
            || vec![Label::new("provider", provider.to_string()), Label::new("model", model.to_string())];
        let tokens = TOKEN_KINDS.map(|kind| {
            let mut l = labels();
            l.push(Label::from_static_parts("kind", kind));
            registry.counter(TOKENS, l)
        });
        ModelSeries {
            provider: Arc::clone(provider),
            model: Arc::clone(model),
            statuses: RwLock::new(Vec::new()),
            tokens,
            cost: registry.gauge(COST, labels()),
            cost_total: Mutex::new(Decimal::ZERO),
            unpriced: OnceLock::new(),
        }
    }

    /// Counts one request answered with `status`.
    pub fn request(&self, registry: &Registry, status: u16) {
        if let Some((_, c)) = read(&self.statuses).iter().find(|(s, _)| *s == status) {
            c.increment(1);
            return;
        }
        let mut statuses = write(&self.statuses);
        if let Some((_, c)) = statuses.iter().find(|(s, _)| *s == status) {
            c.increment(1);
            return;
        }
        let labels = vec![
            Label::new("provider", self.provider.to_string()),
            Label::new("model", self.model.to_string()),
            Label::new("status", status.to_string()),
        ];
        let counter = registry.counter(REQUESTS, labels);
        counter.increment(1);
        statuses.push((status, counter));
    }

    /// Adds a request's cost.
    pub fn add_cost(&self, cost: Decimal) {
        *lock(&self.cost_total) += cost;
    }

    /// Counts one request whose model has no price.
    pub fn unpriced(&self, registry: &Registry) {
        self.unpriced
            .get_or_init(|| registry.counter(UNPRICED, vec![Label::new("model", self.model.to_string())]))
            .increment(1);
    }
}

/// One provider's series, by the model name a request gave and by label.
struct ProviderSeries {
    name: Arc<str>,
    by_name: DashMap<Box<str>, Arc<ModelSeries>>,
    by_label: DashMap<Arc<str>, Arc<ModelSeries>>,
}

impl ProviderSeries {
    fn new(name: &str) -> ProviderSeries {
        ProviderSeries { name: Arc::from(name), by_name: DashMap::new(), by_label: DashMap::new() }
    }
}

/// Every request series of one tollgate, and the bounded set of model labels.
pub struct Series {
    prices: Arc<PriceList>,
    /// The configured providers (fixed for the process's life).
    providers: HashMap<Box<str>, ProviderSeries>,
    /// Requests no provider was routed to.
    unrouted: ProviderSeries,
    /// Model names outside the price list that have a label of their own.
    others: Mutex<HashSet<Arc<str>>>,
}

impl Series {
    /// Series for the given providers' requests, model labels taken from `prices`.
    pub fn new<'a>(prices: Arc<PriceList>, providers: impl IntoIterator<Item = &'a str>) -> Series {
        Series {
            prices,
            providers: providers.into_iter().map(|p| (Box::from(p), ProviderSeries::new(p))).collect(),
            unrouted: ProviderSeries::new(NONE),
            others: Mutex::new(HashSet::new()),
        }
    }

    /// Sets every cost gauge from its exact total (at scrape time).
    pub fn publish_costs(&self) {
        for p in self.providers.values().chain([&self.unrouted]) {
            for s in p.by_label.iter() {
                let total = *lock(&s.cost_total);
                s.cost.set(super::usd(total));
            }
        }
    }

    /// The series of a request to `provider` (none: not routed) naming `model`.
    pub fn of(&self, registry: &Registry, provider: Option<&str>, model: Option<&str>) -> Arc<ModelSeries> {
        // A provider outside the config cannot reach here (records carry configured names).
        let p = provider.and_then(|p| self.providers.get(p)).unwrap_or(&self.unrouted);
        let name = model.unwrap_or(NONE);
        if let Some(found) = p.by_name.get(name) {
            return Arc::clone(found.value());
        }
        let label = self.label(&p.name, name);
        let series = Arc::clone(
            p.by_label
                .entry(Arc::clone(&label))
                .or_insert_with(|| Arc::new(ModelSeries::new(registry, &p.name, &label)))
                .value(),
        );
        if p.by_name.len() < MAX_REMEMBERED_NAMES {
            p.by_name.insert(Box::from(name), Arc::clone(&series));
        }
        series
    }

    /// The label of a model name: the price list's name for it, else the name itself while
    /// there is room for it and it is fit to be shown, else [`OTHER`].
    fn label(&self, provider: &str, name: &str) -> Arc<str> {
        if name == NONE || name == OTHER {
            return Arc::from(name);
        }
        if let Some(resolved) = self.prices.resolve(provider, name) {
            return Arc::from(resolved.price.name.as_str());
        }
        let mut others = lock(&self.others);
        if let Some(known) = others.get(name) {
            return Arc::clone(known);
        }
        if others.len() < MAX_OTHER_MODELS && presentable(name) {
            let label: Arc<str> = Arc::from(name);
            others.insert(Arc::clone(&label));
            return label;
        }
        Arc::from(OTHER)
    }
}

/// Whether a client-chosen model name may be shown as a label as it is: short, and made of
/// the characters model names use (nothing that could pass for markup or another label).
fn presentable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> (Series, Registry) {
        let prices = Arc::new(PriceList::shipped().unwrap());
        (Series::new(prices, ["openai", "anthropic"]), Registry::new().unwrap())
    }

    #[test]
    fn priced_models_are_labelled_with_the_price_list_name_whatever_the_client_sent() {
        let (s, r) = series();
        assert_eq!(&*s.of(&r, Some("openai"), Some("gpt-4o")).model, "gpt-4o");
        // A dated snapshot and an invented suffix resolve to the same entry: one series.
        let a = s.of(&r, Some("openai"), Some("gpt-4o-2024-08-06"));
        let b = s.of(&r, Some("openai"), Some("gpt-4o-made-up-suffix"));
        assert_eq!(&*a.model, "gpt-4o");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(s.others.lock().unwrap().is_empty(), "priced names take no slot");
    }

    #[test]
    fn other_names_are_bounded_across_providers_then_other() {
        let (s, r) = series();
        for i in 0..MAX_OTHER_MODELS {
            let provider = if i % 2 == 0 { "openai" } else { "anthropic" };
            let name = format!("invented-{i}");
            assert_eq!(&*s.of(&r, Some(provider), Some(&name)).model, name.as_str());
        }
        assert_eq!(&*s.of(&r, Some("openai"), Some("one-too-many")).model, OTHER);
        // Names seen before keep their label.
        assert_eq!(&*s.of(&r, Some("anthropic"), Some("invented-0")).model, "invented-0");
        assert_eq!(&*s.of(&r, Some("openai"), None).model, NONE);
        assert_eq!(&*s.of(&r, None, None).provider, NONE);
    }

    #[test]
    fn names_unfit_to_show_are_other_and_take_no_slot() {
        let (s, r) = series();
        for name in ["", "a b", "x\"}", &"m".repeat(MAX_LABEL_CHARS + 1), "é"] {
            assert_eq!(&*s.of(&r, Some("openai"), Some(name)).model, OTHER, "{name:?}");
        }
        assert!(s.others.lock().unwrap().is_empty());
        assert_eq!(&*s.of(&r, Some("openai"), Some("org/model:v1@x+y_z.2")).model, "org/model:v1@x+y_z.2");
    }
}
