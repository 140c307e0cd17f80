//! What the admin listener serves without a token: liveness, readiness, Prometheus
//! metrics (on loopback), and the OpenAPI description itself.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::Unauthorized;
use super::router::{Call, Reply};
use super::{json_response, openapi, AdminError, AdminState};
use crate::body::full;

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(examples("ok", "ready", "store unavailable"))]
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "service", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz(_state: &AdminState, _call: Call) -> Reply {
    Ok(json_response(StatusCode::OK, &Health { status: "ok" }))
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "service", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    ))]
pub async fn readyz(state: &AdminState, _call: Call) -> Reply {
    Ok(match state.store.ping().await {
        Ok(()) => json_response(StatusCode::OK, &Health { status: "ready" }),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            json_response(StatusCode::SERVICE_UNAVAILABLE, &Health { status: "store unavailable" })
        }
    })
}

/// This description (OpenAPI 3.1), generated from the code that serves the API.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 description of the admin API",
        content_type = "application/json", body = serde_json::Value)))]
pub async fn openapi_json(_state: &AdminState, _call: Call) -> Reply {
    static BODY: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(openapi::json().to_string()));
    let mut response = Response::new(full(BODY.clone()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Prometheus metrics (SPEC §9, docs/METRICS.md). No token needed on a loopback admin
/// listener; the admin token elsewhere.
#[utoipa::path(get, path = "/metrics", tag = "service", security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "The Prometheus text format",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, response = Unauthorized),
    ))]
pub async fn metrics(state: &AdminState, call: Call) -> Reply {
    state.metrics.respond(call.authorized).ok_or(AdminError::Unauthorized)
}

/// The headers `GET /metrics` would answer with.
#[utoipa::path(head, path = "/metrics", tag = "service", security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "The headers of the metrics text, without it"),
        (status = 401, response = Unauthorized),
    ))]
pub async fn metrics_head(state: &AdminState, call: Call) -> Reply {
    state.metrics.respond(call.authorized).ok_or(AdminError::Unauthorized)
}
