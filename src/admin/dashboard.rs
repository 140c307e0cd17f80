//! The dashboard: HTML pages on the admin listener, drawn by the server (no script, no
//! build step, nothing fetched from elsewhere). Spend over a date range as a chart and a
//! table grouped by organization, project, user, model or provider, each budget's current
//! window as a bar, the newest requests and the fired alerts.
//!
//! Same protection as the JSON API: the admin token, as a bearer header or through the
//! login form, which trades it for a session cookie ([`session`]). Without either a page
//! answers 401 with the login form.

pub mod chart;
pub mod names;
pub mod page;
pub mod session;
pub mod view;

use bytes::Bytes;
use chrono::Utc;
use http::{header, HeaderValue, Response, StatusCode};
use maud::Markup;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::router::{Call, Reply};
use super::{AdminError, AdminState};
use crate::body::{full, ProxyBody};
use view::{Params, View};

/// What the dashboard's pages may load: nothing but themselves (no script at all).
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's query: a date range, a grouping, and optional filters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DashboardParams {
    /// First day shown (UTC, `YYYY-MM-DD`); 29 days before `to` when absent.
    pub from: Option<chrono::NaiveDate>,
    /// Last day shown, inclusive (UTC, `YYYY-MM-DD`); today when absent. At most 366
    /// days from `from`.
    pub to: Option<chrono::NaiveDate>,
    /// `organization`, `project` (when absent), `user`, `model` or `provider`.
    pub group_by: Option<String>,
    /// Only this organization's spend and budgets.
    pub organization_id: Option<Uuid>,
    /// Only this project's spend and budgets.
    pub project_id: Option<Uuid>,
    /// Only this user's spend and budgets.
    pub user_id: Option<Uuid>,
    /// Only this model's spend.
    pub model: Option<String>,
}

/// The login form's fields.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginForm {
    /// The `[admin] token` of the configuration.
    pub token: String,
}

/// An HTML answer with the dashboard's headers.
pub fn html(status: StatusCode, markup: Markup) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// A 303 to `to`, optionally setting a cookie.
fn see_other(to: &'static str, cookie: Option<String>) -> Reply {
    let mut response = html(StatusCode::SEE_OTHER, maud::html! { a href=(to) { "continue" } });
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_static(to));
    if let Some(cookie) = cookie {
        let value = HeaderValue::from_str(&cookie).map_err(|_| AdminError::BadRequest {
            field: None,
            message: "cookie not representable".into(),
        })?;
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The answer to a dashboard request without the token or a session: the login form.
pub fn unauthorized() -> Response<ProxyBody> {
    html(StatusCode::UNAUTHORIZED, page::login(None))
}

/// Spend over time, by group, budgets, latest requests and fired alerts, as HTML.
#[utoipa::path(get, path = "/dashboard", tag = "dashboard",
    params(DashboardParams),
    security(("admin_token" = []), ("dashboard_session" = [])),
    responses(
        (status = 200, description = "The dashboard", content_type = "text/html; charset=utf-8", body = String),
        (status = 400, description = "A parameter is wrong (named on the page)",
            content_type = "text/html; charset=utf-8", body = String),
        (status = 401, description = "No token and no session: the login form",
            content_type = "text/html; charset=utf-8", body = String),
    ))]
pub async fn dashboard(state: &AdminState, call: Call) -> Reply {
    let signed_in = state.token.is_some();
    let today = Utc::now().date_naive();
    let params = match Params::read(&call.query, today) {
        Ok(p) => p,
        Err(AdminError::BadRequest { field: Some(field), message }) => {
            return Ok(html(
                StatusCode::BAD_REQUEST,
                page::problem(&format!("{field}: {message}"), signed_in),
            ));
        }
        Err(e) => return Err(e),
    };
    let view = View::load(state, params).await?;
    Ok(html(StatusCode::OK, page::dashboard(&view, today, signed_in)))
}

/// The login form.
#[utoipa::path(get, path = "/dashboard/login", tag = "dashboard", security(()),
    responses((status = 200, description = "The login form", content_type = "text/html; charset=utf-8", body = String)))]
pub async fn dashboard_login_form(_state: &AdminState, _call: Call) -> Reply {
    Ok(html(StatusCode::OK, page::login(None)))
}

/// Trades the admin token for a session cookie (12 hours) and goes to the dashboard.
#[utoipa::path(post, path = "/dashboard/login", tag = "dashboard", security(()),
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: a `tollgate_session` cookie (HttpOnly, SameSite=Lax) \
            and a redirect to `/dashboard`"),
        (status = 403, description = "Not the admin token: the login form again",
            content_type = "text/html; charset=utf-8", body = String),
    ))]
pub async fn dashboard_login(state: &AdminState, call: Call) -> Reply {
    let Some(expected) = &state.token else { return see_other("/dashboard", None) };
    let presented = form_urlencoded::parse(&call.body).find(|(k, _)| k == "token").map(|(_, v)| v);
    let right = presented
        .is_some_and(|p| bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), expected.as_bytes())));
    if !right {
        return Ok(html(StatusCode::FORBIDDEN, page::login(Some("That is not the admin token."))));
    }
    let value = session::issue(expected, Utc::now())
        .ok_or_else(|| AdminError::BadRequest { field: None, message: "cannot start a session".into() })?;
    see_other("/dashboard", Some(session::set_cookie(&value)))
}

/// Ends the session and goes to the login form.
#[utoipa::path(post, path = "/dashboard/logout", tag = "dashboard", security(()),
    responses((status = 303, description = "Signed out: the cookie cleared, a redirect to the login form")))]
pub async fn dashboard_logout(_state: &AdminState, _call: Call) -> Reply {
    see_other("/dashboard/login", Some(session::clear_cookie()))
}
