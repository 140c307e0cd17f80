//! The proxy pipeline on one screen: route, authenticate, prepare, forward, respond.
//! Each step is a named function returning `Result<_, ProxyError>`; errors are rendered
//! once, here, in the route's provider shape.

pub mod body;
pub mod forward;
pub mod headers;
pub mod route;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::{AuthMode, Config, Provider, ProviderKind};
use crate::error::ProxyError;
use crate::identity::{AuthError, Identities};
use crate::store::Identity;
use body::{IdleTimeoutBody, ProxyBody};
use forward::UpstreamClient;
use route::Route;

/// Response header carrying the request id (also the cost record's `request_id`).
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// Everything a request needs, shared by all connections.
pub struct ProxyState {
    pub config: Arc<Config>,
    pub identities: Arc<Identities>,
    pub client: UpstreamClient,
}

/// Handles one client request end to end; never fails, errors become responses.
pub async fn handle(state: Arc<ProxyState>, request: Request<Incoming>) -> Response<ProxyBody> {
    let request_id = Uuid::now_v7().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        provider = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let default_kind = state
            .config
            .provider(&state.config.default_provider)
            .map(|p| p.kind)
            .unwrap_or(ProviderKind::OpenAi);
        let mut kind = default_kind;
        let result = pipeline(&state, request, &request_id, &mut kind).await;
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(error = %e, "request failed");
                } else {
                    tracing::info!(error = %e, "request refused");
                }
                e.into_response(kind, &request_id)
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let span = tracing::Span::current();
        span.record("status", response.status().as_u16());
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        tracing::info!("response head sent");
        response
    }
    .instrument(span)
    .await
}

async fn pipeline(
    state: &ProxyState,
    request: Request<Incoming>,
    request_id: &str,
    kind: &mut ProviderKind,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let route = route::resolve(&state.config, &path)?;
    *kind = route.provider.kind;
    tracing::Span::current().record("provider", route.provider.name.as_str());
    let mut query = parts.uri.query().map(str::to_owned);
    let query_key = take_query_key(route.provider, &mut query);
    let _identity = authenticate(state, &parts.headers, route.provider, query_key.as_deref()).await?;
    check_declared_length(&parts.headers, state.config.max_request_bytes)?;
    prepare_headers(&state.config, route.provider, &mut parts.headers)?;
    parts.uri = route::upstream_uri(route.provider, route.path, query.as_deref())?;
    // The upstream hop negotiates its own version (ALPN); the client's does not carry over.
    parts.version = http::Version::HTTP_11;
    let body = Limited::new(body, state.config.max_request_bytes as usize).boxed();
    let upstream_request = Request::from_parts(parts, body);
    let response = forward(state, upstream_request, &route).await?;
    tracing::debug!(request_id, "upstream answered");
    Ok(response)
}

/// Gemini clients may put their key in `?key=`; it is a credential, never forwarded.
fn take_query_key(provider: &Provider, query: &mut Option<String>) -> Option<String> {
    if provider.kind != ProviderKind::Gemini {
        return None;
    }
    let q = query.as_deref()?;
    if !route::has_param(q, "key") {
        return None;
    }
    let (value, rest) = route::take_param(q, "key");
    *query = rest;
    value
}

/// Finds out who is calling, per `auth.mode`.
async fn authenticate(
    state: &ProxyState,
    headers: &http::HeaderMap,
    provider: &Provider,
    query_key: Option<&str>,
) -> Result<Arc<Identity>, ProxyError> {
    let result = match state.config.auth_mode {
        AuthMode::Keys => {
            let presented = headers::client_credential(provider.kind, headers, query_key)
                .ok_or(ProxyError::InvalidKey)?;
            state.identities.by_key(presented).await
        }
        AuthMode::Headers => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let (Some(user), Some(project)) = (header("x-tollgate-user"), header("x-tollgate-project"))
            else {
                return Err(ProxyError::InvalidKey);
            };
            state.identities.by_headers(user, project).await
        }
    };
    result.map_err(|e| match e {
        AuthError::Unknown => ProxyError::InvalidKey,
        AuthError::Revoked => ProxyError::Revoked("key revoked"),
        AuthError::Expired => ProxyError::Revoked("key expired"),
        AuthError::Archived => ProxyError::Revoked("user, project or organization archived"),
        AuthError::Store(e) => {
            tracing::error!(error = %e, "identity lookup failed");
            ProxyError::StoreUnavailable
        }
    })
}

/// Refuses a body whose declared length is already over the limit, before reading it.
fn check_declared_length(headers: &http::HeaderMap, max: u64) -> Result<(), ProxyError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max => Err(ProxyError::TooLarge(max)),
        _ => Ok(()),
    }
}

/// Hop-by-hop and tollgate headers out, client credential swapped for the provider key.
fn prepare_headers(
    config: &Config,
    provider: &Provider,
    headers: &mut http::HeaderMap,
) -> Result<(), ProxyError> {
    headers::strip_hop_by_hop(headers);
    headers::strip_tollgate_headers(headers);
    headers.remove(http::header::HOST);
    match (&provider.api_key, config.auth_mode) {
        (Some(key), _) => {
            headers::strip_credentials(headers);
            headers::set_provider_key(headers, provider, key)
                .map_err(|_| ProxyError::ProviderKeyMissing(provider.name.clone()))?;
        }
        // A trusted sidecar may pass the client's own provider key through.
        (None, AuthMode::Headers) => {}
        (None, AuthMode::Keys) => return Err(ProxyError::ProviderKeyMissing(provider.name.clone())),
    }
    Ok(())
}

/// Sends upstream and turns the answer into the client's response, body streamed as it comes.
async fn forward(
    state: &ProxyState,
    request: Request<ProxyBody>,
    route: &Route<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let config = &state.config;
    let response =
        forward::send(&state.client, request, config.first_byte_timeout, config.max_request_bytes).await?;
    let (mut parts, incoming) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.version = http::Version::HTTP_11;
    tracing::debug!(provider = %route.provider.name, status = parts.status.as_u16(), "upstream head");
    let body = IdleTimeoutBody::new(incoming, config.idle_timeout).boxed();
    Ok(Response::from_parts(parts, body))
}
