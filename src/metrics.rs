//! Prometheus metrics (SPEC §9, docs/METRICS.md): one recorder per running tollgate, so
//! several in one process (the tests) never share a count, with no global recorder and
//! no exporter listener: `GET /metrics` on the admin listener renders it. What happens
//! per request (requests, tokens, cost, refusals, durations) is counted through handles
//! registered once and kept ([`series`]); what other parts already keep (the ledger's
//! queue and journal, records written, store failures, leases) is read at scrape time.

pub mod series;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use rust_decimal::prelude::ToPrimitive;

use crate::body::{full, ProxyBody};
use crate::budget::Budgets;
use crate::ledger::Ledger;
use crate::pricing::PriceList;
use crate::store::{CostRecord, Scope, Store};
use series::Series;

// The names of SPEC §9 (docs/METRICS.md says what each means).
const REQUESTS: &str = "tollgate_requests_total";
const TOKENS: &str = "tollgate_tokens_total";
const COST: &str = "tollgate_cost_usd_total";
const BUDGET_REJECTIONS: &str = "tollgate_budget_rejections_total";
const UPSTREAM_DURATION: &str = "tollgate_upstream_duration_seconds";
const OVERHEAD: &str = "tollgate_overhead_seconds";
const QUEUE_DEPTH: &str = "tollgate_record_queue_depth";
const UNPRICED: &str = "tollgate_unpriced_requests_total";
const JOURNAL_BYTES: &str = "tollgate_journal_bytes";
const RECORDS_WRITTEN: &str = "tollgate_records_written_total";
const BUDGET_LEASES: &str = "tollgate_budget_leases";
const STORE_ERRORS: &str = "tollgate_store_errors_total";

/// From a fast local upstream's milliseconds to a long generation's minutes.
const UPSTREAM_BUCKETS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0];
/// tollgate's own time per request: tens of microseconds when warm, milliseconds when a
/// cache miss goes to the database.
const OVERHEAD_BUCKETS: [f64; 15] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
];

/// The type of a metric, for its description.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric with the HELP line a scrape shows.
const HELP: [(&str, Kind, &str); 12] = [
    (
        REQUESTS,
        Kind::Counter,
        "Proxied requests by provider, model and status (a metered request's from its cost record).",
    ),
    (TOKENS, Kind::Counter, "Tokens of the cost records, by kind (the record column of the same name)."),
    (
        COST,
        Kind::Gauge,
        "USD of the cost records; only grows (a gauge because metrics counters are integers).",
    ),
    (
        BUDGET_REJECTIONS,
        Kind::Counter,
        "Requests refused by a hard budget, by the scope of the budget that refused.",
    ),
    (
        UPSTREAM_DURATION,
        Kind::Histogram,
        "From sending a request upstream to its response head (or the failure).",
    ),
    (
        OVERHEAD,
        Kind::Histogram,
        "Time to the response head spent in tollgate, not waiting on the upstream or the client.",
    ),
    (QUEUE_DEPTH, Kind::Gauge, "Settled cost records not yet in the database."),
    (UNPRICED, Kind::Counter, "Cost records whose model has no price (recorded at cost 0)."),
    (JOURNAL_BYTES, Kind::Gauge, "Bytes of cost journal on disk."),
    (RECORDS_WRITTEN, Kind::Counter, "Cost records this process wrote to the database."),
    (BUDGET_LEASES, Kind::Gauge, "Live budget leases this replica holds, by scope (PostgreSQL)."),
    (STORE_ERRORS, Kind::Counter, "Failed database operations, by operation."),
];

/// The prometheus content type of the text format `render` produces.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

/// One tollgate's recorder, through which every series is registered.
pub struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Registry {
    /// A recorder with tollgate's histogram buckets and every metric described.
    pub fn new() -> Result<Registry, BuildError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), &UPSTREAM_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(OVERHEAD.into()), &OVERHEAD_BUCKETS)?
            .build_recorder();
        let handle = recorder.handle();
        let registry = Registry { recorder, handle };
        registry.describe();
        Ok(registry)
    }

    fn describe(&self) {
        for (name, kind, help) in HELP {
            let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
            match kind {
                Kind::Counter => self.recorder.describe_counter(name, None, help),
                Kind::Gauge => self.recorder.describe_gauge(name, None, help),
                Kind::Histogram => self.recorder.describe_histogram(name, None, help),
            }
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str) -> Histogram {
        self.recorder.register_histogram(&Key::from_static_name(name), &METADATA)
    }
}

/// What the request path counts.
pub struct Metrics {
    registry: Registry,
    series: Series,
    upstream: Histogram,
    overhead: Histogram,
    /// By scope: organization, project, user.
    rejections: [Counter; 3],
}

impl Metrics {
    /// Metrics for the given providers' requests, model labels taken from `prices`.
    pub fn new<'a>(
        prices: Arc<PriceList>,
        providers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Metrics, BuildError> {
        let registry = Registry::new()?;
        let rejections = [Scope::Organization, Scope::Project, Scope::User].map(|s| {
            registry.counter(BUDGET_REJECTIONS, vec![Label::from_static_parts("scope", s.as_str())])
        });
        Ok(Metrics {
            series: Series::new(prices, providers),
            upstream: registry.histogram(UPSTREAM_DURATION),
            overhead: registry.histogram(OVERHEAD),
            rejections,
            registry,
        })
    }

    /// Counts a request that has no cost record (refused, or not metered) as answered
    /// with `status`; `provider` is none when no provider was routed to.
    pub fn request(&self, provider: Option<&str>, model: Option<&str>, status: u16) {
        self.series.of(&self.registry, provider, model).request(&self.registry, status);
    }

    /// Counts a metered request from its cost record: status, tokens, cost, unpriced.
    pub fn settled(&self, record: &CostRecord) {
        let s = self.series.of(&self.registry, Some(&record.provider), record.model.as_deref());
        s.request(&self.registry, record.status_code);
        for (counter, n) in s.tokens.iter().zip(series::token_counts(record)) {
            match n {
                Some(n) if n > 0 => counter.increment(n),
                _ => {}
            }
        }
        if !record.cost_usd.is_zero() {
            s.add_cost(record.cost_usd);
        }
        if !record.priced {
            s.unpriced(&self.registry);
        }
    }

    /// Records how long the upstream took to answer with a head (or to fail).
    pub fn upstream(&self, took: Duration) {
        self.upstream.record(took.as_secs_f64());
    }

    /// Records tollgate's own time on a request (see docs/METRICS.md for what it leaves out).
    pub fn overhead(&self, took: Duration) {
        self.overhead.record(took.as_secs_f64());
    }

    /// Counts a request a hard budget of `scope` refused.
    pub fn budget_rejected(&self, scope: Scope) {
        let i = match scope {
            Scope::Organization => 0,
            Scope::Project => 1,
            Scope::User => 2,
        };
        self.rejections[i].increment(1);
    }

    /// Folds the histogram samples recorded since the last call into their buckets, so
    /// they do not pile up in memory between scrapes.
    pub fn upkeep(&self) {
        self.registry.handle.run_upkeep();
    }

    /// The Prometheus text of every metric, with the figures read at scrape time updated.
    pub fn render(&self, sources: &Sources) -> String {
        let r = &self.registry;
        self.series.publish_costs();
        let ledger = &sources.ledger;
        r.gauge(QUEUE_DEPTH, Vec::new()).set(ledger.depth() as f64);
        r.gauge(JOURNAL_BYTES, Vec::new()).set(ledger.journal_bytes() as f64);
        r.counter(RECORDS_WRITTEN, Vec::new()).absolute(ledger.records_written());
        for (op, n) in sources.store.failures() {
            r.counter(STORE_ERRORS, vec![Label::from_static_parts("op", op)]).absolute(n);
        }
        if sources.store.postgres().is_some() {
            for (scope, n) in sources.budgets.live_leases() {
                r.gauge(BUDGET_LEASES, vec![Label::from_static_parts("scope", scope.as_str())]).set(n as f64);
            }
        }
        r.handle.render()
    }
}

/// What a scrape reads besides the request path's counts.
pub struct Sources {
    pub ledger: Ledger,
    pub budgets: Arc<Budgets>,
    pub store: Store,
}

/// `GET /metrics` on the admin listener: the metrics, their sources, and who may read them.
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    pub sources: Sources,
    /// No token needed: the admin listener is bound to a loopback address, so only this
    /// host can reach it (elsewhere the admin token is required, as for the API).
    pub open: bool,
}

impl Endpoint {
    /// Answers a scrape (GET, or HEAD: the server drops the body): the text, or `None`
    /// when the token is required and was not presented.
    pub fn respond(&self, authorized: bool) -> Option<Response<ProxyBody>> {
        if !self.open && !authorized {
            return None;
        }
        let mut response = Response::new(full(Bytes::from(self.metrics.render(&self.sources))));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        Some(response)
    }
}

/// A cost as the gauge shows it: the exact running total, rounded once at scrape time.
fn usd(total: rust_decimal::Decimal) -> f64 {
    total.to_f64().unwrap_or(f64::MAX)
}
