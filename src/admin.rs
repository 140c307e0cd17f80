//! The admin API (separate listener): bearer-token auth, JSON in and out, strict input
//! (unknown fields and wrong types are errors naming the field), identity cache
//! invalidated before any write is acknowledged. Each operation is one annotated handler
//! ([`entities`], [`keys`], [`budgets`], [`reports`], [`service`]); [`openapi`] gathers
//! their annotations into the OpenAPI description, and [`router`] serves exactly the
//! operations that description lists.

pub mod budgets;
pub mod dashboard;
pub mod entities;
pub mod keys;
pub mod openapi;
pub mod reports;
pub mod requests;
pub mod router;
pub mod service;

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::body::{full, ProxyBody};
use crate::identity::Identities;
use crate::store::{Store, StoreError};
use openapi::{ErrorBody, ErrorDetail};
use requests::parse_query;
use router::{Handler, Reply, Router};

pub use keys::{store_new_key as create_key, CreatedKey};
pub use reports::budget_use;

/// Largest admin request body accepted.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

/// What the admin handlers share.
pub struct AdminState {
    pub store: Store,
    pub identities: Arc<Identities>,
    pub budgets: Arc<crate::budget::Budgets>,
    pub alerts: Arc<crate::alerts::Alerts>,
    pub token: Option<String>,
    pub metrics: crate::metrics::Endpoint,
}

impl AdminState {
    /// Invalidates every cache before a write is acknowledged.
    fn invalidate(&self) {
        self.identities.invalidate_all();
        self.budgets.invalidate();
        self.alerts.invalidate();
    }
}

/// An admin request that cannot be served, with the status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed (allowed: {allow})")]
    MethodNotAllowed { allow: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NoRoute => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            AdminError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            AdminError::Store(StoreError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let field = match &self {
            AdminError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "admin request failed");
            "internal error (see the server log)".to_owned()
        } else {
            self.to_string()
        };
        let mut response = json_response(status, &ErrorBody { error: ErrorDetail { message, field } });
        if let AdminError::MethodNotAllowed { allow } = &self {
            if let Ok(allow) = HeaderValue::from_str(allow) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
        }
        response
    }

    /// A bad field in the request.
    pub fn field(field: &str, message: impl Into<String>) -> AdminError {
        AdminError::BadRequest { field: Some(field.to_owned()), message: message.into() }
    }
}

/// A 200 with `value` as JSON.
fn ok(value: &impl Serialize) -> Reply {
    Ok(json_response(StatusCode::OK, value))
}

/// A 201 with the created object as JSON.
fn created(value: &impl Serialize) -> Reply {
    Ok(json_response(StatusCode::CREATED, value))
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<ProxyBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serves one admin request.
pub async fn handle(state: Arc<AdminState>, request: Request<Incoming>) -> Response<ProxyBody> {
    // Signing in to or out of the dashboard changes nothing the caches hold.
    let writes = request.method() != Method::GET
        && request.method() != Method::HEAD
        && !request.uri().path().starts_with("/dashboard/");
    let result = route(&state, request).await;
    if writes && may_have_written(&result) {
        // Also when the write failed half way (committed, then an error): a stale cache
        // entry must never outlive a change. A request refused before it reached the
        // store (no token, no route, a bad body) changed nothing: it must not empty the
        // caches, or a flood of them would send every proxied request to the database.
        state.invalidate();
    }
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Whether an admin request got far enough to change the database.
fn may_have_written(result: &Reply) -> bool {
    match result {
        Ok(_) | Err(AdminError::Store(_)) => true,
        Err(
            AdminError::BadRequest { .. }
            | AdminError::Unauthorized
            | AdminError::Forbidden(_)
            | AdminError::NoRoute
            | AdminError::MethodNotAllowed { .. },
        ) => false,
    }
}

/// Whether the request carries the admin token, or (where the operation takes one) a
/// dashboard session made with it.
fn authorized(state: &AdminState, request: &Request<Incoming>, session: bool) -> bool {
    let Some(expected) = &state.token else { return true };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    // Digests, so the comparison takes as long whatever the lengths.
    let digest = |t: &str| <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes());
    if bool::from(digest(presented).ct_eq(&digest(expected))) {
        return true;
    }
    session
        && dashboard::session::from_headers(request.headers())
            .is_some_and(|cookie| dashboard::session::valid(cookie, expected, chrono::Utc::now()))
}

async fn read_body(body: Incoming) -> Result<Bytes, AdminError> {
    Limited::new(body, MAX_ADMIN_BODY).collect().await.map(|c| c.to_bytes()).map_err(|_| {
        AdminError::BadRequest {
            field: None,
            message: format!("body unreadable or over {MAX_ADMIN_BODY} bytes"),
        }
    })
}

/// Every operation's handler, by operation id (the function's name, as utoipa names it).
macro_rules! handlers {
    ($($module:ident :: $name:ident),* $(,)?) => {
        &[$((stringify!($name), {
            fn call<'a>(state: &'a AdminState, call: router::Call) -> futures_util::future::BoxFuture<'a, Reply> {
                Box::pin($module::$name(state, call))
            }
            call as Handler
        })),*]
    };
}

/// Every admin operation, once: `operations!(m)` calls macro `m` with the list. The
/// description (`openapi::ApiDoc`, its `paths`) and the router's handler table
/// ([`HANDLERS`]) are both made from it.
macro_rules! operations {
    ($then:ident) => {
        $then! {
            entities::create_organization,
            entities::list_organizations,
            entities::get_organization,
            entities::update_organization,
            entities::delete_organization,
            entities::create_project,
            entities::list_projects,
            entities::get_project,
            entities::update_project,
            entities::delete_project,
            entities::create_user,
            entities::list_users,
            entities::get_user,
            entities::update_user,
            entities::delete_user,
            keys::create_key,
            keys::list_keys,
            keys::get_key,
            keys::revoke_key,
            budgets::create_budget,
            budgets::list_budgets,
            budgets::get_budget,
            budgets::update_budget,
            budgets::delete_budget,
            budgets::create_alert_config,
            budgets::list_alert_configs,
            budgets::delete_alert_config,
            budgets::list_alerts,
            reports::spend,
            reports::list_cost_records,
            service::healthz,
            service::readyz,
            service::openapi_json,
            service::metrics,
            service::metrics_head,
            dashboard::dashboard,
            dashboard::dashboard_login_form,
            dashboard::dashboard_login,
            dashboard::dashboard_logout,
        }
    };
}
use operations;

/// The handlers the router may dispatch to; the description decides which serve what.
pub static HANDLERS: &[(&str, Handler)] = operations!(handlers);

/// The router over the description, built once.
pub fn router() -> &'static Router {
    static ROUTER: LazyLock<Router> = LazyLock::new(|| {
        let router = Router::new(openapi::json(), HANDLERS);
        for problem in &router.problems {
            tracing::error!(%problem, "admin route left out");
        }
        router
    });
    &ROUTER
}

/// Refuses what a web page the operator visits could make a browser send: a write from
/// another origin (the `Origin` or `Sec-Fetch-Site` a browser adds), and, when no token
/// guards the listener, a request for any host name but a loopback one (DNS rebinding:
/// a page whose name points at 127.0.0.1 would otherwise read and write the API as the
/// same origin). Clients that are not browsers send neither header and name the address
/// they connect to.
fn cross_site(state: &AdminState, request: &Request<Incoming>) -> Result<(), AdminError> {
    let headers = request.headers();
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
    if state.token.is_none() && !host.is_some_and(loopback_host) {
        return Err(AdminError::Forbidden("without an admin token only a loopback host name is served"));
    }
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return Ok(());
    }
    // A browser that sends Sec-Fetch-Site says where the request comes from (a page
    // cannot forge it); older ones only send Origin ("null" under a no-referrer policy
    // or from a sandboxed page, which is refused).
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin" | "none") => return Ok(()),
        Some(_) => return Err(AdminError::Forbidden("a write from another site is refused")),
        None => {}
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, authority)| Some(authority) == host);
        if !same {
            return Err(AdminError::Forbidden("a write from another origin is refused"));
        }
    }
    Ok(())
}

/// `127.0.0.1`, `[::1]` or `localhost` (any port): a name no other site can point here.
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') =>
        {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn route(state: &AdminState, request: Request<Incoming>) -> Reply {
    cross_site(state, &request)?;
    let path = request.uri().path();
    let found = router().find(request.method(), path);
    let public = match &found {
        Ok(m) => m.route.public,
        Err(AdminError::MethodNotAllowed { .. }) => router().public_at(path),
        Err(_) => false,
    };
    let session = found.as_ref().is_ok_and(|m| m.route.session);
    let authorized = authorized(state, &request, session);
    if !public && !authorized {
        // A page answers with the login form, the JSON API with a JSON error.
        return if session { Ok(dashboard::unauthorized()) } else { Err(AdminError::Unauthorized) };
    }
    let found = found?;
    let id = found.id()?;
    let query = parse_query(request.uri().query())?;
    let body = read_body(request.into_body()).await?;
    (found.handler)(state, router::Call::new(id, query, body, authorized)).await
}
