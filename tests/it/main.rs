//! One integration test binary: tollgate over real sockets on port 0, in front of an
//! in-process hyper mock upstream, on a fresh SQLite database per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod alerts;
mod auth;
mod budgets;
mod cli;
mod contract;
mod dashboard;
mod db;
mod factory;
mod journal;
mod layering;
mod ledger;
mod metering;
mod metrics;
mod openapi;
mod postgres;
mod proxy;
mod replicas;
mod reports;
mod shutdown;
mod slow_clients;
mod support;
mod tls;
