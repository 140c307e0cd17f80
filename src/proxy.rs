//! The proxy pipeline on one screen: route, authenticate, prepare, forward, respond.
//! Each step is a named function returning `Result<_, ProxyError>`; errors are rendered
//! once, here, in the route's provider shape.

pub mod facts;
pub mod forward;
pub mod headers;
pub mod inject;
pub mod metering;
pub mod route;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;
use uuid::Uuid;

use crate::body::{full, IdleTimeoutBody, ProxyBody};
use crate::budget::admission::AdmitError;
use crate::budget::{Admission, Budgets};
use crate::config::{AuthMode, Config, Provider, UnknownModel, Unmetered};
use crate::error::{ProxyError, REQUEST_ID_HEADER};
use crate::identity::{AuthError, Identities};
use crate::metrics::Metrics;
use crate::provider::ProviderKind;
use crate::store::Identity;
use crate::upstream::UpstreamClient;
use crate::usage::observer::ObservedBody;
use crate::usage::{Api, Meter};
use facts::{request_facts, RequestFacts};
use metering::{Metering, Pending};

/// Response header with the smallest remaining amount along the budget chain.
pub const BUDGET_REMAINING_HEADER: &str = "x-tollgate-budget-remaining-usd";

/// Everything a request needs, shared by all connections.
pub struct ProxyState {
    pub config: Arc<Config>,
    pub identities: Arc<Identities>,
    pub client: UpstreamClient,
    pub metering: Arc<Metering>,
    pub budgets: Arc<Budgets>,
    pub metrics: Arc<Metrics>,
}

/// What [`handle`] learns of a request as the pipeline goes: the shape its errors take,
/// and what its metrics need.
struct Seen<'s> {
    /// The provider kind errors are rendered for (the default provider's until routed).
    kind: ProviderKind,
    provider: Option<&'s str>,
    /// The model the request named, once its body is read.
    model: Option<String>,
    /// A cost record stands for the request: the metrics count it when it settles.
    recorded: bool,
    /// Time spent waiting for others: the client's body upload, the upstream's answer.
    waited: Duration,
}

/// Handles one client request end to end; never fails, errors become responses.
pub async fn handle(state: Arc<ProxyState>, request: Request<Incoming>) -> Response<ProxyBody> {
    let request_id = Uuid::now_v7();
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
        let mut seen =
            Seen { kind: default_kind, provider: None, model: None, recorded: false, waited: Duration::ZERO };
        let result = pipeline(&state, request, request_id, &mut seen).await;
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                if e.status().is_server_error() {
                    tracing::warn!(error = %e, "request failed");
                } else {
                    tracing::info!(error = %e, "request refused");
                }
                e.into_response(seen.kind, &request_id.to_string())
            }
        };
        if let Ok(v) = HeaderValue::from_str(&request_id.to_string()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
        let status = response.status().as_u16();
        if !seen.recorded {
            state.metrics.request(seen.provider, seen.model.as_deref(), status);
        }
        let elapsed = started.elapsed();
        state.metrics.overhead(elapsed.saturating_sub(seen.waited));
        let span = tracing::Span::current();
        span.record("status", status);
        span.record("latency_ms", elapsed.as_millis() as u64);
        tracing::info!("response head sent");
        response
    }
    .instrument(span)
    .await
}

async fn pipeline<'s>(
    state: &'s ProxyState,
    request: Request<Incoming>,
    request_id: Uuid,
    seen: &mut Seen<'s>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let started = Instant::now();
    let created_at = state.budgets.now();
    let config = &state.config;
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let route = route::resolve(config, &path)?;
    let provider = route.provider;
    seen.kind = provider.kind;
    seen.provider = Some(&provider.name);
    tracing::Span::current().record("provider", provider.name.as_str());
    let mut query = parts.uri.query().map(str::to_owned);
    // The `?key=` is tollgate's to consume unless a sidecar passes the client's own key on.
    let passes_client_key = config.auth_mode == AuthMode::Headers && provider.api_key.is_none();
    let query_key = if passes_client_key { None } else { take_query_key(provider, &mut query) };
    let identity = authenticate(state, &parts.headers, provider, query_key.as_deref()).await?;
    check_declared_length(&parts.headers, config.max_request_bytes)?;
    // Metering looks at the decoded path: `%3AgenerateContent` reaches the same upstream
    // endpoint as `:generateContent` and must not slip past metering and budgets.
    let decoded_path = percent_encoding::percent_decode_str(route.path).decode_utf8_lossy();
    let api = metered_api(provider, &parts.method, &decoded_path).filter(|_| config.metering_enabled);
    if api.is_none() && config.unmetered == Unmetered::Deny {
        return Err(ProxyError::NotFound(format!("{} is not a metered endpoint", route.path)));
    }
    prepare_headers(config, provider, &mut parts.headers)?;
    parts.uri = route::upstream_uri(provider, route.path, query.as_deref())?;
    // The upstream hop negotiates its own version (ALPN); the client's does not carry over.
    parts.version = http::Version::HTTP_11;
    let Some(api) = api else {
        // Unpriceable but maybe billed (images, audio, batches, files): no estimate, but an
        // exhausted hard budget cannot be bypassed through such an endpoint.
        if parts.method != Method::GET && parts.method != Method::HEAD {
            admit(state, &identity, rust_decimal::Decimal::ZERO, created_at)
                .await?
                .settle(rust_decimal::Decimal::ZERO);
        }
        // Streamed through: a client that pauses mid-upload longer than the body timeout
        // is cut off rather than holding the upstream request open.
        let body = IdleTimeoutBody::new(
            Limited::new(body, config.max_request_bytes as usize),
            config.client_limits.body_timeout,
        )
        .boxed();
        return forward(state, Request::from_parts(parts, body), seen).await;
    };

    // A client that stalls mid-body must not hold a connection and a task forever.
    let reading = Instant::now();
    let bytes =
        tokio::time::timeout(config.client_limits.body_timeout, read_body(body, config.max_request_bytes))
            .await;
    seen.waited += reading.elapsed();
    let bytes =
        bytes.map_err(|_| ProxyError::BodyTimeout(config.client_limits.body_timeout.as_millis()))??;
    let mut facts = request_facts(api, &decoded_path, &bytes);
    if facts.model.is_none() {
        facts.model = provider.default_model.clone();
    }
    seen.model.clone_from(&facts.model);
    check_priced(config, provider, &facts)?;
    let inject = config.inject_stream_usage
        && provider.kind == ProviderKind::OpenAi
        && api == Api::ChatCompletions
        && facts.stream
        && !facts.include_usage;
    let (bytes, injected) = match inject.then(|| inject::add_include_usage(&bytes)).flatten() {
        Some(rewritten) => (rewritten, true),
        None => (bytes, false),
    };
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    if injected {
        // The usage chunk tollgate asked for is removed from what the client sees, which
        // needs the stream in clear: a compressed one could only be passed through whole.
        parts.headers.remove(http::header::ACCEPT_ENCODING);
    }
    let upper_bound = crate::usage::Usage {
        input_tokens: bytes.len() as u64,
        output_tokens: facts.max_output_tokens.unwrap_or(config.default_max_output_tokens),
        ..Default::default()
    };
    let estimate = metering::estimate_cost(
        &config.prices,
        provider,
        &facts,
        bytes.len() as u64,
        config.default_max_output_tokens,
    );
    // A request that could not be recorded is not sent: refuse before reserving anything.
    state.metering.ledger.check_room().map_err(unrecordable)?;
    let admission = admit(state, &identity, estimate, created_at).await?;
    let remaining = admission.remaining;
    let pending = Pending {
        request_id,
        created_at,
        started,
        identity,
        provider: provider.name.clone(),
        endpoint: route.path.to_owned(),
        api,
        request_bytes: bytes.len() as u64,
        facts,
        prices: Arc::clone(&config.prices),
        metering: Arc::clone(&state.metering),
        admission: Some(admission),
        settled: false,
        unanswered: false,
        upper_bound,
    }
    .journaled()
    .map_err(unrecordable)?;
    seen.recorded = true;
    let request = Request::from_parts(parts, full(bytes));
    let response = match send(state, request, seen).await {
        Ok(response) => response,
        Err(failed) => {
            let status = failed.error.status().as_u16();
            if failed.maybe_billed {
                pending.settle_unanswered(status);
            } else {
                pending.settle(status, None);
            }
            return Err(failed.error);
        }
    };
    let mut response = observe(config, api, response, pending, injected);
    if let Some(remaining) = remaining {
        if let Ok(v) = HeaderValue::from_str(&remaining.normalize().to_string()) {
            response.headers_mut().insert(BUDGET_REMAINING_HEADER, v);
        }
    }
    Ok(response)
}

/// Reserves the estimate on the caller's budget chain, or refuses with 402.
async fn admit(
    state: &ProxyState,
    identity: &Identity,
    estimate: rust_decimal::Decimal,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Admission, ProxyError> {
    match state.budgets.admit(identity, estimate, at).await {
        Ok(admission) => Ok(admission),
        Err(AdmitError::Refused(refusal)) => {
            state.metrics.budget_rejected(refusal.budget.scope);
            Err(ProxyError::BudgetExceeded(refusal.to_string()))
        }
        Err(AdmitError::Store(e)) => {
            tracing::error!(error = %e, "budget lookup failed");
            Err(ProxyError::StoreUnavailable)
        }
    }
}

/// The journal could not take a request: it is refused (503), never served unrecorded.
fn unrecordable(e: crate::journal::JournalError) -> ProxyError {
    tracing::error!(error = %e, "request refused: the cost journal cannot take it");
    ProxyError::Unrecordable
}

/// The metered endpoint a request hits, if any: only POSTs are metered.
fn metered_api(provider: &Provider, method: &Method, path: &str) -> Option<Api> {
    if method != Method::POST {
        return None;
    }
    provider.kind.api(path)
}

/// Reads a metered request's body (bounded) so its model and options are known.
async fn read_body(body: Incoming, max: u64) -> Result<Bytes, ProxyError> {
    match Limited::new(body, max as usize).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ProxyError::TooLarge(max))
        }
        Err(e) => Err(ProxyError::BadRequest(format!("request body could not be read: {e}"))),
    }
}

/// With `unknown_model = "reject"`, refuses a model the price list cannot resolve.
fn check_priced(config: &Config, provider: &Provider, facts: &RequestFacts) -> Result<(), ProxyError> {
    if config.unknown_model == UnknownModel::Allow {
        return Ok(());
    }
    match &facts.model {
        Some(model) if config.prices.resolve(&provider.name, model).is_some() => Ok(()),
        Some(model) => Err(ProxyError::UnknownModel(model.clone())),
        None => Err(ProxyError::UnknownModel("(none given)".into())),
    }
}

/// Wraps a metered response's body so its usage is read as it streams by.
fn observe(
    config: &Config,
    api: Api,
    response: Response<Incoming>,
    pending: Pending,
    injected: bool,
) -> Response<ProxyBody> {
    let (mut parts, incoming) = response_head(response);
    let status = parts.status.as_u16();
    let is_event_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
    let encoding =
        parts.headers.get(http::header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let cap = if is_event_stream { config.max_event_bytes } else { config.max_json_bytes };
    let meter = Meter::new(api, status, is_event_stream, cap);
    let on_settle = Box::new(move |observation| pending.settle(status, Some(observation)));
    let idle = IdleTimeoutBody::new(incoming, config.idle_timeout);
    let observed = ObservedBody::new(idle, meter, encoding.as_deref(), on_settle);
    let body = if injected && is_event_stream && encoding.is_none() {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        inject::InjectedUsageFilter::new(observed).boxed()
    } else {
        observed.boxed()
    };
    Response::from_parts(parts, body)
}

/// Gemini clients may put their key in `?key=`; it is a credential, never forwarded.
fn take_query_key(provider: &Provider, query: &mut Option<String>) -> Option<String> {
    let name = provider.kind.query_key()?;
    let q = query.as_deref()?;
    if !route::has_param(q, name) {
        return None;
    }
    let (value, rest) = route::take_param(q, name);
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
            let presented =
                provider.kind.client_credential(headers, query_key).ok_or(ProxyError::InvalidKey)?;
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

/// Sends a request upstream and waits for the response head, timed for the metrics.
async fn send(
    state: &ProxyState,
    request: Request<ProxyBody>,
    seen: &mut Seen<'_>,
) -> Result<Response<Incoming>, forward::Unanswered> {
    let config = &state.config;
    let sent = Instant::now();
    let result =
        forward::send(&state.client, request, config.first_byte_timeout, config.max_request_bytes).await;
    let took = sent.elapsed();
    seen.waited += took;
    state.metrics.upstream(took);
    result
}

/// Sends an unmetered request upstream; the answer streams back untouched.
async fn forward(
    state: &ProxyState,
    request: Request<ProxyBody>,
    seen: &mut Seen<'_>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let config = &state.config;
    let response = send(state, request, seen).await.map_err(|failed| failed.error)?;
    let (parts, incoming) = response_head(response);
    let body = IdleTimeoutBody::new(incoming, config.idle_timeout).boxed();
    Ok(Response::from_parts(parts, body))
}

/// The upstream's response head as the client gets it: hop-by-hop headers out, and the
/// version left to the client's own connection.
fn response_head(response: Response<Incoming>) -> (http::response::Parts, Incoming) {
    let (mut parts, incoming) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.version = http::Version::HTTP_11;
    (parts, incoming)
}
