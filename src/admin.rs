//! The admin API (separate listener): bearer-token auth, JSON in and out, strict input
//! (unknown fields and wrong types are errors naming the field), identity cache
//! invalidated before any write is acknowledged.

pub mod requests;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::identity::{generate_key, Identities};
use crate::proxy::body::{full, ProxyBody};
use crate::store::{NewKey, NewUser, Patch, Store, StoreError};
use requests::{
    parse_json, parse_query, CreateKey, CreateOrganization, CreateProject, CreateUser, PatchEntity,
};

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
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::NoRoute => StatusCode::NOT_FOUND,
            AdminError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
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
        json_response(status, &serde_json::json!({"error": {"message": message, "field": field}}))
    }

    /// A bad field in the request.
    pub fn field(field: &str, message: impl Into<String>) -> AdminError {
        AdminError::BadRequest { field: Some(field.to_owned()), message: message.into() }
    }
}

/// A 200 with `value` as JSON.
fn ok(value: &impl Serialize) -> Result<Response<ProxyBody>, AdminError> {
    Ok(json_response(StatusCode::OK, value))
}

/// A 201 with the created object as JSON.
fn created(value: &impl Serialize) -> Result<Response<ProxyBody>, AdminError> {
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
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
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
fn may_have_written(result: &Result<Response<ProxyBody>, AdminError>) -> bool {
    match result {
        Ok(_) | Err(AdminError::Store(_)) => true,
        Err(
            AdminError::BadRequest { .. }
            | AdminError::Unauthorized
            | AdminError::NoRoute
            | AdminError::MethodNotAllowed,
        ) => false,
    }
}

fn authorized(state: &AdminState, request: &Request<Incoming>) -> bool {
    let Some(expected) = &state.token else { return true };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

async fn read_body(body: Incoming) -> Result<Bytes, AdminError> {
    Limited::new(body, MAX_ADMIN_BODY).collect().await.map(|c| c.to_bytes()).map_err(|_| {
        AdminError::BadRequest {
            field: None,
            message: format!("body unreadable or over {MAX_ADMIN_BODY} bytes"),
        }
    })
}

fn parse_id(segment: &str) -> Result<Uuid, AdminError> {
    Uuid::parse_str(segment).map_err(|_| AdminError::field("id", "not a UUID"))
}

async fn route(state: &AdminState, request: Request<Incoming>) -> Result<Response<ProxyBody>, AdminError> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match path.as_str() {
        "/healthz" => return Ok(json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        "/metrics" => return state.metrics.respond(&method, authorized(state, &request)),
        "/readyz" => {
            return Ok(match state.store.ping().await {
                Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "ready"})),
                Err(e) => {
                    tracing::warn!(error = %e, "readiness check failed");
                    json_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &serde_json::json!({"status": "store unavailable"}),
                    )
                }
            })
        }
        _ => {}
    }
    if !authorized(state, &request) {
        return Err(AdminError::Unauthorized);
    }
    let query = parse_query(request.uri().query())?;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (collection, id) = match segments.as_slice() {
        ["v1", collection] => (*collection, None),
        ["v1", collection, id] => (*collection, Some(parse_id(id)?)),
        _ => return Err(AdminError::NoRoute),
    };
    let body = read_body(request.into_body()).await?;
    let s = &state.store;
    let page = query.page()?;
    let response = match (collection, id, &method) {
        ("organizations", None, &Method::POST) => {
            let req: CreateOrganization = parse_json(&body)?;
            created(&s.create_organization(&req.validated()?).await?)
        }
        ("organizations", None, &Method::GET) => ok(&s.list_organizations(&page).await?),
        ("organizations", Some(id), &Method::GET) => ok(&s.get_organization(id).await?),
        ("organizations", Some(id), &Method::PATCH) => {
            let patch = parse_json::<PatchEntity>(&body)?.validated(false)?;
            let org = s.update_organization(id, &patch).await?;
            ok(&org)
        }
        ("organizations", Some(id), &Method::DELETE) => {
            s.delete_organization(id).await?;
            ok(&deleted(id))
        }
        ("projects", None, &Method::POST) => {
            let req: CreateProject = parse_json(&body)?;
            let name = req.validated_name()?;
            created(&s.create_project(req.organization_id, &name).await?)
        }
        ("projects", None, &Method::GET) => {
            ok(&s.list_projects(query.uuid("organization_id")?, &page).await?)
        }
        ("projects", Some(id), &Method::GET) => ok(&s.get_project(id).await?),
        ("projects", Some(id), &Method::PATCH) => {
            let patch = parse_json::<PatchEntity>(&body)?.validated(false)?;
            let project = s.update_project(id, &patch).await?;
            ok(&project)
        }
        ("projects", Some(id), &Method::DELETE) => {
            s.delete_project(id).await?;
            ok(&deleted(id))
        }
        ("users", None, &Method::POST) => {
            let req: CreateUser = parse_json(&body)?;
            let new: NewUser = req.validated()?;
            created(&s.create_user(&new).await?)
        }
        ("users", None, &Method::GET) => ok(&s.list_users(query.uuid("organization_id")?, &page).await?),
        ("users", Some(id), &Method::GET) => ok(&s.get_user(id).await?),
        ("users", Some(id), &Method::PATCH) => {
            let patch: Patch = parse_json::<PatchEntity>(&body)?.validated(true)?;
            let user = s.update_user(id, &patch).await?;
            ok(&user)
        }
        ("users", Some(id), &Method::DELETE) => {
            s.delete_user(id).await?;
            ok(&deleted(id))
        }
        ("keys", None, &Method::POST) => {
            let req: CreateKey = parse_json(&body)?;
            let created_key = create_key(s, req).await?;
            created(&created_key)
        }
        ("keys", None, &Method::GET) => ok(&s.list_keys(query.uuid("user_id")?, &page).await?),
        ("keys", Some(id), &Method::GET) => ok(&s.get_key(id).await?),
        ("keys", Some(id), &Method::DELETE) => {
            let key = s.revoke_key(id).await?;
            ok(&key)
        }
        ("budgets", None, &Method::POST) => {
            let b = parse_json::<requests::CreateBudget>(&body)?.validated()?;
            let budget = s.create_budget(b.scope, b.scope_id, b.limit_usd, b.period, b.hard).await?;
            created(&state.budgets.status(budget).await?)
        }
        ("budgets", None, &Method::GET) => {
            let page = s.list_budgets(query.uuid("scope_id")?, &page).await?;
            let mut data = Vec::with_capacity(page.data.len());
            for b in page.data {
                data.push(state.budgets.status(b).await?);
            }
            ok(&serde_json::json!({"data": data, "next_cursor": page.next_cursor}))
        }
        ("budgets", Some(id), &Method::GET) => ok(&state.budgets.status(s.get_budget(id).await?).await?),
        ("budgets", Some(id), &Method::PATCH) => {
            let patch = parse_json::<requests::PatchBudget>(&body)?.validated()?;
            let budget = s.update_budget(id, &patch).await?;
            ok(&state.budgets.status(budget).await?)
        }
        ("budgets", Some(id), &Method::DELETE) => {
            s.delete_budget(id).await?;
            ok(&deleted(id))
        }
        ("alert-configs", None, &Method::POST) => {
            let req: requests::CreateAlertConfig = parse_json(&body)?;
            req.validated()?;
            let config = s
                .create_alert_config(
                    req.budget_id,
                    req.threshold_percent,
                    req.webhook_url.as_deref(),
                    req.enabled,
                )
                .await?;
            created(&config)
        }
        ("alert-configs", None, &Method::GET) => ok(
            &serde_json::json!({"data": s.list_alert_configs(query.uuid("budget_id")?).await?, "next_cursor": null}),
        ),
        ("alert-configs", Some(id), &Method::DELETE) => {
            s.delete_alert_config(id).await?;
            ok(&deleted(id))
        }
        ("alerts", None, &Method::GET) => ok(
            &serde_json::json!({"data": s.list_alerts(query.uuid("budget_id")?).await?, "next_cursor": null}),
        ),
        ("cost-records", None, &Method::GET) => {
            ok(&s.list_cost_records(&query.record_filter()?, &page).await?)
        }
        ("spend", None, &Method::GET) => {
            let filter = query.record_filter()?;
            let data = s.spend(&filter, query.group_by()?).await?;
            let budgets = budget_use(state, &filter).await?;
            ok(&serde_json::json!({"data": data, "from": filter.from, "to": filter.to, "budgets": budgets}))
        }
        (
            "organizations" | "projects" | "users" | "keys" | "cost-records" | "spend" | "budgets"
            | "alert-configs" | "alerts",
            _,
            _,
        ) => Err(AdminError::MethodNotAllowed),
        _ => Err(AdminError::NoRoute),
    };
    response
}

/// Every budget relevant to a report's filter, with its current window's use.
pub async fn budget_use(
    state: &AdminState,
    filter: &crate::store::RecordFilter,
) -> Result<Vec<crate::budget::BudgetStatus>, AdminError> {
    let wanted: Vec<Uuid> =
        [filter.organization_id, filter.project_id, filter.user_id].into_iter().flatten().collect();
    let mut out = Vec::new();
    let mut page = crate::store::PageRequest { cursor: None, limit: 1000 };
    loop {
        let got = state.store.list_budgets(None, &page).await?;
        for b in got.data {
            if wanted.is_empty() || wanted.contains(&b.scope_id) {
                out.push(state.budgets.status(b).await?);
            }
        }
        match got.next_cursor.and_then(|c| Uuid::parse_str(&c).ok()) {
            Some(c) => page.cursor = Some(c),
            None => return Ok(out),
        }
    }
}

fn deleted(id: Uuid) -> serde_json::Value {
    serde_json::json!({"id": id, "deleted": true})
}

/// A created key: the stored fields plus the plaintext, shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: crate::store::ApiKey,
    /// The plaintext `tg_...` key; never stored, never shown again.
    #[serde(rename = "key")]
    pub plaintext: String,
}

/// Generates and stores a key for the request.
pub async fn create_key(store: &Store, req: CreateKey) -> Result<CreatedKey, AdminError> {
    let name = req.validated_name()?;
    let generated = generate_key();
    let key = store
        .create_key(&NewKey {
            user_id: req.user_id,
            project_id: req.project_id,
            name,
            expires_at: req.expires_at,
            key_hash: generated.hash,
            prefix: generated.prefix,
        })
        .await?;
    Ok(CreatedKey { key, plaintext: generated.plaintext })
}
