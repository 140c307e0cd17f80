//! Admin request bodies and query strings: strict parsing (unknown fields and wrong types
//! are errors naming the field) and validation into store inputs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use super::AdminError;
use crate::store::{GroupBy, NewUser, PageRequest, Patch, RecordFilter};

/// Longest name or external id accepted.
const MAX_NAME: usize = 200;

/// Parses a JSON body, naming the offending field on error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    if body.is_empty() {
        return Err(AdminError::BadRequest { field: None, message: "a JSON body is required".into() });
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { None } else { Some(path) };
        AdminError::BadRequest { field, message: e.into_inner().to_string() }
    })
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    pub name: String,
}

impl CreateOrganization {
    pub fn validated(&self) -> Result<String, AdminError> {
        check_name("name", &self.name)
    }
}

/// `POST /v1/projects`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub organization_id: Uuid,
    pub name: String,
}

impl CreateProject {
    pub fn validated_name(&self) -> Result<String, AdminError> {
        check_name("name", &self.name)
    }
}

/// `POST /v1/users`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub organization_id: Uuid,
    pub external_id: String,
    #[serde(default)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub user_id: Uuid,
    pub project_id: Uuid,
    #[serde(default)]
    pub name: Option<String>,
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

/// `PATCH` of an organization, project or user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEntity {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

impl PatchEntity {
    /// Users have an email and no name; organizations and projects the other way round.
    pub fn validated(self, is_user: bool) -> Result<Patch, AdminError> {
        if is_user && self.name.is_some() {
            return Err(AdminError::field("name", "users have no name; set email or archived"));
        }
        if !is_user && self.email.is_some() {
            return Err(AdminError::field("email", "only users have an email"));
        }
        Ok(Patch {
            name: self.name.as_deref().map(|n| check_name("name", n)).transpose()?,
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

    /// An optional UUID parameter.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, AdminError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| Uuid::parse_str(v).map_err(|_| AdminError::field(name, "not a UUID")))
            .transpose()
    }

    /// An optional string parameter.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// An optional time: RFC 3339, or a date (`2026-11-30`, meaning its UTC midnight).
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, AdminError> {
        let Some(v) = self.get(name).filter(|v| !v.is_empty()) else { return Ok(None) };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|d| Some(d.and_time(chrono::NaiveTime::MIN).and_utc()))
            .map_err(|_| AdminError::field(name, "must be an RFC 3339 time or a YYYY-MM-DD date"))
    }

    /// The record filters shared by cost records and spend.
    pub fn record_filter(&self) -> Result<RecordFilter, AdminError> {
        let filter = RecordFilter {
            organization_id: self.uuid("organization_id")?,
            project_id: self.uuid("project_id")?,
            user_id: self.uuid("user_id")?,
            api_key_id: match self.uuid("api_key_id")? {
                Some(k) => Some(k),
                None => self.uuid("key_id")?,
            },
            model: self.text("model"),
            provider: self.text("provider"),
            request_id: self.uuid("request_id")?,
            from: self.time("from")?,
            to: self.time("to")?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from >= to {
                return Err(AdminError::field("to", "must be after from"));
            }
        }
        Ok(filter)
    }

    /// `group_by` of a spend report (default `model`).
    pub fn group_by(&self) -> Result<GroupBy, AdminError> {
        match self.get("group_by") {
            None | Some("") => Ok(GroupBy::Model),
            Some(v) => GroupBy::parse(v).ok_or_else(|| {
                AdminError::field(
                    "group_by",
                    "must be organization, project, user, key, model, provider or day",
                )
            }),
        }
    }

    /// `limit` and `cursor`.
    pub fn page(&self) -> Result<PageRequest, AdminError> {
        let limit = match self.get("limit") {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| AdminError::field("limit", "must be an integer from 1 to 1000"))?,
            None => 0,
        };
        Ok(PageRequest { cursor: self.uuid("cursor")?, limit })
    }
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

fn period(value: &str) -> Result<crate::window::Period, AdminError> {
    crate::window::Period::parse(value)
        .ok_or_else(|| AdminError::field("period", "must be daily, weekly, monthly or total"))
}

/// `POST /v1/budgets`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBudget {
    pub scope: String,
    pub scope_id: Uuid,
    pub limit_usd: serde_json::Value,
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
    pub scope: crate::store::Scope,
    pub scope_id: Uuid,
    pub limit_usd: rust_decimal::Decimal,
    pub period: crate::window::Period,
    pub hard: bool,
}

impl CreateBudget {
    pub fn validated(self) -> Result<NewBudget, AdminError> {
        Ok(NewBudget {
            scope: crate::store::Scope::parse(&self.scope)
                .ok_or_else(|| AdminError::field("scope", "must be organization, project or user"))?,
            scope_id: self.scope_id,
            limit_usd: money("limit_usd", &self.limit_usd)?,
            period: period(&self.period)?,
            hard: self.hard,
        })
    }
}

/// `PATCH /v1/budgets/{id}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBudget {
    #[serde(default)]
    pub limit_usd: Option<serde_json::Value>,
    #[serde(default)]
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAlertConfig {
    pub budget_id: Uuid,
    pub threshold_percent: u32,
    #[serde(default)]
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
