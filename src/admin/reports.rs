//! Reading spend: the spend report (grouped sums plus the budgets it touches) and the
//! cost records themselves.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::openapi::{BadRequest, Unauthorized};
use super::requests::{GroupByParam, PageParams, RecordParams};
use super::router::{Call, Reply};
use super::{ok, AdminError, AdminState};
use crate::budget::BudgetStatus;
use crate::store::{Budget, CostRecord, Page, PageRequest, RecordFilter, SpendRow};

/// A spend report.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendReport {
    /// One row per group, with its sums.
    pub data: Vec<SpendRow>,
    /// The report's `from`, as given.
    pub from: Option<DateTime<Utc>>,
    /// The report's `to`, as given.
    pub to: Option<DateTime<Utc>>,
    /// Every budget of the filtered organization, project and user (all budgets when
    /// unfiltered), with its current window's use.
    pub budgets: Vec<BudgetStatus>,
}

/// Sums requests, tokens and cost by a grouping over the filtered cost records.
#[utoipa::path(get, path = "/v1/spend", tag = "reports",
    params(GroupByParam, RecordParams),
    responses(
        (status = 200, description = "The report", body = SpendReport),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn spend(state: &AdminState, call: Call) -> Reply {
    let filter = RecordParams::read(&call.query)?;
    let data = state.store.spend(&filter, GroupByParam::read(&call.query)?).await?;
    let budgets = budget_use(state, &filter).await?;
    ok(&SpendReport { data, from: filter.from, to: filter.to, budgets })
}

/// Lists cost records, oldest first.
#[utoipa::path(get, path = "/v1/cost-records", tag = "reports",
    params(RecordParams, PageParams),
    responses(
        (status = 200, description = "A page of cost records", body = Page<CostRecord>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_cost_records(state: &AdminState, call: Call) -> Reply {
    let filter = RecordParams::read(&call.query)?;
    ok(&state.store.list_cost_records(&filter, &PageParams::read(&call.query)?).await?)
}

/// Every budget relevant to a report's filter, with its current window's use.
pub async fn budget_use(state: &AdminState, filter: &RecordFilter) -> Result<Vec<BudgetStatus>, AdminError> {
    let wanted: Vec<Uuid> =
        [filter.organization_id, filter.project_id, filter.user_id].into_iter().flatten().collect();
    let mut out = Vec::new();
    for b in budgets_of(state, &wanted).await? {
        out.push(state.budgets.status(b).await?);
    }
    Ok(out)
}

/// The budgets of the given organizations, projects and users (every budget when none
/// is given), read page by page.
pub async fn budgets_of(state: &AdminState, scopes: &[Uuid]) -> Result<Vec<Budget>, AdminError> {
    let scopes: Vec<Option<Uuid>> =
        if scopes.is_empty() { vec![None] } else { scopes.iter().copied().map(Some).collect() };
    let mut out = Vec::new();
    for scope in scopes {
        let mut page = PageRequest { cursor: None, limit: 1000 };
        loop {
            let got = state.store.list_budgets(scope, &page).await?;
            out.extend(got.data);
            match got.next_cursor.and_then(|c| Uuid::parse_str(&c).ok()) {
                Some(c) => page.cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(out)
}
