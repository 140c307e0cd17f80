//! Budgets (each answered with its current window's use), alert thresholds on them, and
//! the alerts that fired.

use super::openapi::{BadRequest, Deleted, IdParam, NotFound, Unauthorized};
use super::requests::{BudgetFilter, CreateAlertConfig, CreateBudget, PageParams, PatchBudget, ScopeFilter};
use super::router::{Call, Reply};
use super::{created, ok, AdminState};
use crate::budget::BudgetStatus;
use crate::store::{Alert, AlertConfig, Page};

/// Creates a budget on an organization, project or user; hard unless `hard` is false.
#[utoipa::path(post, path = "/v1/budgets", tag = "budgets",
    request_body = CreateBudget,
    responses(
        (status = 201, description = "The new budget with its current window", body = BudgetStatus),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn create_budget(state: &AdminState, call: Call) -> Reply {
    let b = call.json::<CreateBudget>()?.validated()?;
    let budget = state.store.create_budget(b.scope, b.scope_id, b.limit_usd, b.period, b.hard).await?;
    created(&state.budgets.status(budget).await?)
}

/// Lists budgets, each with its current window's spend, oldest first.
#[utoipa::path(get, path = "/v1/budgets", tag = "budgets",
    params(ScopeFilter, PageParams),
    responses(
        (status = 200, description = "A page of budgets", body = Page<BudgetStatus>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_budgets(state: &AdminState, call: Call) -> Reply {
    let scope = ScopeFilter::read(&call.query)?;
    let page = state.store.list_budgets(scope, &PageParams::read(&call.query)?).await?;
    let mut data = Vec::with_capacity(page.data.len());
    for b in page.data {
        data.push(state.budgets.status(b).await?);
    }
    ok(&Page { data, next_cursor: page.next_cursor })
}

/// Reads a budget: its limit, and its current window's spent, reserved and remaining.
#[utoipa::path(get, path = "/v1/budgets/{id}", tag = "budgets",
    params(IdParam),
    responses(
        (status = 200, description = "The budget with its current window", body = BudgetStatus),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn get_budget(state: &AdminState, call: Call) -> Reply {
    ok(&state.budgets.status(state.store.get_budget(call.id()?).await?).await?)
}

/// Changes a budget's limit, period or hardness; the next request sees it.
#[utoipa::path(patch, path = "/v1/budgets/{id}", tag = "budgets",
    params(IdParam),
    request_body = PatchBudget,
    responses(
        (status = 200, description = "The budget as changed", body = BudgetStatus),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn update_budget(state: &AdminState, call: Call) -> Reply {
    let patch = call.json::<PatchBudget>()?.validated()?;
    let budget = state.store.update_budget(call.id()?, &patch).await?;
    ok(&state.budgets.status(budget).await?)
}

/// Deletes a budget with its alert configs.
#[utoipa::path(delete, path = "/v1/budgets/{id}", tag = "budgets",
    params(IdParam),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn delete_budget(state: &AdminState, call: Call) -> Reply {
    let id = call.id()?;
    state.store.delete_budget(id).await?;
    ok(&Deleted::of(id))
}

/// Sets an alert threshold on a budget.
#[utoipa::path(post, path = "/v1/alert-configs", tag = "budgets",
    request_body = CreateAlertConfig,
    responses(
        (status = 201, description = "The new alert config", body = AlertConfig),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn create_alert_config(state: &AdminState, call: Call) -> Reply {
    let req: CreateAlertConfig = call.json()?;
    req.validated()?;
    let config = state
        .store
        .create_alert_config(req.budget_id, req.threshold_percent, req.webhook_url.as_deref(), req.enabled)
        .await?;
    created(&config)
}

/// Lists alert configs, all in one page.
#[utoipa::path(get, path = "/v1/alert-configs", tag = "budgets",
    params(BudgetFilter),
    responses(
        (status = 200, description = "Every matching alert config (`next_cursor` is null)", body = Page<AlertConfig>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_alert_configs(state: &AdminState, call: Call) -> Reply {
    let data = state.store.list_alert_configs(BudgetFilter::read(&call.query)?).await?;
    ok(&Page { data, next_cursor: None })
}

/// Deletes an alert config.
#[utoipa::path(delete, path = "/v1/alert-configs/{id}", tag = "budgets",
    params(IdParam),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    ))]
pub async fn delete_alert_config(state: &AdminState, call: Call) -> Reply {
    let id = call.id()?;
    state.store.delete_alert_config(id).await?;
    ok(&Deleted::of(id))
}

/// Lists fired alerts with their webhook delivery status, oldest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "budgets",
    params(BudgetFilter, PageParams),
    responses(
        (status = 200, description = "A page of alerts", body = Page<Alert>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    ))]
pub async fn list_alerts(state: &AdminState, call: Call) -> Reply {
    let budget = BudgetFilter::read(&call.query)?;
    ok(&state.store.list_alerts(budget, &PageParams::read(&call.query)?).await?)
}
