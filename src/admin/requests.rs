//! Admin request bodies and query strings: strict parsing (unknown fields and wrong types
//! are errors naming the field) and validation into store inputs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::openapi::{Email, Name, UsdInput};
use super::AdminError;
use crate::store::{GroupBy, NewUser, PageRequest, Patch, RecordFilter, Scope};
use crate::window::Period;

/// Longest name or external id accepted.
const MAX_NAME: usize = 200;

/// Parses a JSON body, one object and nothing after it, naming the offending field on
/// error. (serde would also read a struct from an array of its fields in order.)
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let bad = |message: String| AdminError::BadRequest { field: None, message };
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(bad("a JSON body is required".into())),
        Some(b'{') => {}
        Some(_) => return Err(bad("the body must be a JSON object".into())),
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { None } else { Some(path) };
        AdminError::BadRequest { field, message: e.into_inner().to_string() }
    })?;
    de.end().map_err(|e| bad(format!("the body must hold one JSON object: {e}")))?;
    Ok(value)
}

fn check_name(field: &str, value: &str) -> Result<String, AdminError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AdminError::field(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME || trimmed.chars().any(char::is_control) {
        return Err(AdminError::field(field, format!("must be at most {MAX_NAME} printable characters")));
    }
    Ok(trimmed.to_owned())
}

/// `POST /v1/organizations`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[schema(value_type = Name)]
    pub name: String,
}

impl CreateOrganization {
    pub fn validated(&self) -> Result<String, AdminError> {
        check_name("name", &self.name)
    }
}

/// `POST /v1/projects`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub organization_id: Uuid,
    #[schema(value_type = Name)]
    pub name: String,
}

impl CreateProject {
    pub fn validated_name(&self) -> Result<String, AdminError> {
        check_name("name", &self.name)
    }
}

/// `POST /v1/users`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub organization_id: Uuid,
    /// The user's id in your own systems (what `x-tollgate-user` may name).
    #[schema(value_type = Name)]
    pub external_id: String,
    #[serde(default)]
    #[schema(value_type = Option<Email>)]
    pub email: Option<String>,
}

impl CreateUser {
    pub fn validated(self) -> Result<NewUser, AdminError> {
        Ok(NewUser {
            organization_id: self.organization_id,
            external_id: check_name("external_id", &self.external_id)?,
            email: self.email.map(|e| check_email(&e)).transpose()?,
        })
    }
}

fn check_email(value: &str) -> Result<String, AdminError> {
    let v = check_name("email", value)?;
    match v.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !v.contains(' ') => Ok(v),
        _ => Err(AdminError::field("email", "is not an email address")),
    }
}

/// `POST /v1/keys`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub user_id: Uuid,
    /// A project of the user's organization.
    pub project_id: Uuid,
    #[serde(default)]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// When the key stops working; must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl CreateKey {
    pub fn validated_name(&self) -> Result<Option<String>, AdminError> {
        if self.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(AdminError::field("expires_at", "must be in the future"));
        }
        self.name.as_deref().map(|n| check_name("name", n)).transpose()
    }
}

fn some<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH` of an organization or a project: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNamed {
    #[serde(default)]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// `true` archives (its keys stop working; spend history stays), `false` restores.
    #[serde(default)]
    pub archived: Option<bool>,
}

impl PatchNamed {
    pub fn validated(self) -> Result<Patch, AdminError> {
        Ok(Patch {
            name: self.name.as_deref().map(|n| check_name("name", n)).transpose()?,
            email: None,
            archived: self.archived,
        })
    }
}

/// `PATCH /v1/users/{id}`: fields left out stay as they are; `"email": null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<Email>)]
    pub email: Option<Option<String>>,
    /// `true` archives (the user's keys stop working; spend history stays), `false` restores.
    #[serde(default)]
    pub archived: Option<bool>,
}

impl PatchUser {
    pub fn validated(self) -> Result<Patch, AdminError> {
        Ok(Patch {
            name: None,
            email: match self.email {
                Some(Some(e)) => Some(Some(check_email(&e)?)),
                other => other,
            },
            archived: self.archived,
        })
    }
}

/// Parsed query parameters of a list request.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Splits and percent-decodes a raw query string.
pub fn parse_query(raw: Option<&str>) -> Result<Query, AdminError> {
    let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect();
    Ok(Query { pairs })
}

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// An optional UUID parameter. Present but empty is an error, not "no filter": a
    /// client whose variable came out empty must not get everyone's objects.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, AdminError> {
        self.get(name)
            .map(|v| Uuid::parse_str(v).map_err(|_| AdminError::field(name, "not a UUID")))
            .transpose()
    }

    /// An optional string parameter; empty is the same as absent. Control characters are
    /// refused: no name holds one, and PostgreSQL refuses a NUL in a text parameter.
    pub fn text(&self, name: &str) -> Result<Option<String>, AdminError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            Some(v) if v.chars().any(char::is_control) => {
                Err(AdminError::field(name, "must not hold control characters"))
            }
            v => Ok(v.map(str::to_owned)),
        }
    }

    /// An optional time: RFC 3339, or a date (`2026-11-30`, meaning its UTC midnight).
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, AdminError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| Some(d.and_time(chrono::NaiveTime::MIN).and_utc()))
            .map_err(|_| AdminError::field(name, "must be an RFC 3339 time or a YYYY-MM-DD date"))
    }
}

/// `limit` and `cursor` of a paged list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// At most this many items (100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl PageParams {
    /// Reads `limit` and `cursor`.
    pub fn read(query: &Query) -> Result<PageRequest, AdminError> {
        let limit = match query.get("limit") {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| AdminError::field("limit", "must be an integer from 1 to 1000"))?,
            None => 0,
        };
        Ok(PageRequest { cursor: query.uuid("cursor")?, limit })
    }
}

/// The filters shared by cost records and spend reports; all optional, all combined.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordParams {
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    /// Same as `api_key_id` (when that is absent).
    pub key_id: Option<Uuid>,
    /// Empty is the same as absent.
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub model: Option<String>,
    /// Empty is the same as absent.
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub provider: Option<String>,
    pub request_id: Option<Uuid>,
    /// Records created at or after this time (RFC 3339, or `YYYY-MM-DD` for its UTC midnight).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Records created before this time (RFC 3339, or `YYYY-MM-DD`); after `from`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
}

impl RecordParams {
    /// Reads the filters.
    pub fn read(query: &Query) -> Result<RecordFilter, AdminError> {
        let filter = RecordFilter {
            organization_id: query.uuid("organization_id")?,
            project_id: query.uuid("project_id")?,
            user_id: query.uuid("user_id")?,
            api_key_id: match query.uuid("api_key_id")? {
                Some(k) => Some(k),
                None => query.uuid("key_id")?,
            },
            model: query.text("model")?,
            provider: query.text("provider")?,
            request_id: query.uuid("request_id")?,
            from: query.time("from")?,
            to: query.time("to")?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from >= to {
                return Err(AdminError::field("to", "must be after from"));
            }
        }
        Ok(filter)
    }
}

/// How a spend report groups its rows.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupByParam {
    /// `model` when absent.
    #[param(inline)]
    pub group_by: Option<GroupBy>,
}

impl GroupByParam {
    /// Reads `group_by` (default `model`).
    pub fn read(query: &Query) -> Result<GroupBy, AdminError> {
        match query.get("group_by") {
            None => Ok(GroupBy::Model),
            Some(v) => GroupBy::parse(v).ok_or_else(|| {
                AdminError::field(
                    "group_by",
                    "must be organization, project, user, key, model, provider or day",
                )
            }),
        }
    }
}

/// Defines a query parameter struct holding one optional id that narrows a list.
macro_rules! id_filter {
    ($($name:ident { $field:ident: $doc:literal }),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($field), "`: ", $doc)]
        #[derive(Debug, IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            #[doc = $doc]
            pub $field: Option<Uuid>,
        }

        impl $name {
            #[doc = concat!("Reads `", stringify!($field), "`.")]
            pub fn read(query: &Query) -> Result<Option<Uuid>, AdminError> {
                query.uuid(stringify!($field))
            }
        }
    )*};
}

id_filter! {
    OrganizationFilter { organization_id: "Only those of this organization." },
    UserFilter { user_id: "Only those of this user." },
    ScopeFilter { scope_id: "Only those limiting this organization, project or user." },
    BudgetFilter { budget_id: "Only those of this budget." },
}

/// Reads a money amount: a decimal string (`"10.50"`) or a JSON number, exactly.
fn money(field: &str, value: &serde_json::Value) -> Result<rust_decimal::Decimal, AdminError> {
    let text = match value {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(AdminError::field(field, "must be a decimal string like \"10.00\"")),
    };
    let parsed = rust_decimal::Decimal::from_str_exact(&text)
        .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
        .map_err(|_| AdminError::field(field, format!("'{text}' is not a decimal amount")))?;
    if parsed <= rust_decimal::Decimal::ZERO {
        return Err(AdminError::field(field, "must be greater than 0"));
    }
    if parsed > rust_decimal::Decimal::from(1_000_000_000_000u64) {
        return Err(AdminError::field(field, "is implausibly large"));
    }
    Ok(parsed.normalize())
}

fn period(value: &str) -> Result<Period, AdminError> {
    Period::parse(value).ok_or_else(|| AdminError::field("period", "must be daily, weekly, monthly or total"))
}

/// `POST /v1/budgets`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBudget {
    #[schema(value_type = Scope)]
    pub scope: String,
    /// The organization, project or user the budget limits.
    pub scope_id: Uuid,
    #[schema(value_type = UsdInput)]
    pub limit_usd: serde_json::Value,
    #[schema(value_type = Period)]
    pub period: String,
    /// Hard budgets refuse; soft ones only alert. Hard unless said otherwise.
    #[serde(default = "yes")]
    pub hard: bool,
}

fn yes() -> bool {
    true
}

/// A validated new budget.
pub struct NewBudget {
    pub scope: Scope,
    pub scope_id: Uuid,
    pub limit_usd: rust_decimal::Decimal,
    pub period: Period,
    pub hard: bool,
}

impl CreateBudget {
    pub fn validated(self) -> Result<NewBudget, AdminError> {
        Ok(NewBudget {
            scope: Scope::parse(&self.scope)
                .ok_or_else(|| AdminError::field("scope", "must be organization, project or user"))?,
            scope_id: self.scope_id,
            limit_usd: money("limit_usd", &self.limit_usd)?,
            period: period(&self.period)?,
            hard: self.hard,
        })
    }
}

/// `PATCH /v1/budgets/{id}`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBudget {
    #[serde(default)]
    #[schema(value_type = Option<UsdInput>)]
    pub limit_usd: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Period>)]
    pub period: Option<String>,
    #[serde(default)]
    pub hard: Option<bool>,
}

impl PatchBudget {
    pub fn validated(self) -> Result<crate::store::BudgetPatch, AdminError> {
        Ok(crate::store::BudgetPatch {
            limit_usd: self.limit_usd.as_ref().map(|v| money("limit_usd", v)).transpose()?,
            period: self.period.as_deref().map(period).transpose()?,
            hard: self.hard,
        })
    }
}

/// `POST /v1/alert-configs`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlertConfig {
    pub budget_id: Uuid,
    /// Fires when a settled request takes the window's spend to this percent of the limit.
    #[schema(minimum = 1, maximum = 1000)]
    pub threshold_percent: u32,
    /// Gets a JSON POST when the alert fires.
    #[serde(default)]
    #[schema(format = "uri")]
    pub webhook_url: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl CreateAlertConfig {
    pub fn validated(&self) -> Result<(), AdminError> {
        if !(1..=1000).contains(&self.threshold_percent) {
            return Err(AdminError::field("threshold_percent", "must be from 1 to 1000"));
        }
        if let Some(url) = &self.webhook_url {
            let ok = url
                .parse::<http::Uri>()
                .ok()
                .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some());
            if !ok {
                return Err(AdminError::field("webhook_url", "must be an http or https URL"));
            }
        }
        Ok(())
    }
}
