//! tollgate: a transparent spend-gate reverse proxy for AI provider APIs.
//!
//! A request's way through the code:
//!
//! - [`server`] accepts connections (HTTP/1.1 and HTTP/2, optional TLS) and hands each
//!   request to [`proxy::handle`], which reads top to bottom: [`proxy::route`] picks the
//!   provider, [`identity`] says who is calling (cached, no database I/O once warm),
//!   [`proxy::headers`] swaps the tollgate key for the provider key, and
//!   [`proxy::forward`] sends the request over the pooled rustls client of [`upstream`]
//!   and streams the answer back untouched (in the boxed [`body`] every response uses).
//! - [`provider`] holds what tollgate knows of each provider's API, one file per provider:
//!   which endpoints are metered, where credentials go, the shape of its errors.
//! - [`budget`] admits a request against every hard budget of its chain (in memory;
//!   leases on PostgreSQL), [`proxy::facts`] reads what the request asks for,
//!   [`proxy::metering`] prices what [`usage`] read out of the answer, and [`ledger`]
//!   records it: into the crash-safe [`journal`] first, then the database in batches.
//!   [`alerts`] fire when a write crosses a threshold; [`pricing`] holds the price list,
//!   [`window`] the budget periods.
//! - [`error`] renders tollgate's own refusals in the provider's error shape.
//! - [`store`] is the storage seam: SQLite (embedded default) or PostgreSQL (several
//!   replicas), one migration set each under migrations/; [`invalidation`] carries admin
//!   writes made elsewhere (NOTIFY/LISTEN, or polling on SQLite) into the caches.
//! - [`admin`] is the admin API (one annotated handler per operation; its router and
//!   `/openapi.json` come from the same description) and the dashboard's HTML pages
//!   ([`admin::dashboard`]); [`cli`] the same operations from
//!   the command line; [`metrics`] what the admin listener's `/metrics` shows
//!   (Prometheus).
//! - [`config`] turns the TOML file into a validated [`config::Config`]; [`app`] wires
//!   everything together and runs until a signal. [`sync`] is the one way locks are
//!   taken (a poisoned lock is used as it is).

pub mod admin;
pub mod alerts;
pub mod app;
pub mod body;
pub mod budget;
pub mod cli;
pub mod config;
pub mod error;
pub mod identity;
pub mod invalidation;
pub mod journal;
pub mod ledger;
pub mod metrics;
pub mod pricing;
pub mod provider;
pub mod proxy;
pub mod server;
pub mod store;
pub mod sync;
pub mod upstream;
pub mod usage;
pub mod window;
