//! The admin commands on organizations, projects, users, keys, budgets and alert
//! configs: each prints a short line or table, or with `--json` the object the admin API
//! returns for the same operation.

use std::future::Future;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

use super::exit::UsageError;
use super::{AlertConfigCommand, BudgetCommand, KeyCommand, OrgCommand, Output, ProjectCommand, UserCommand};
use crate::admin::{create_key, AdminError};
use crate::budget::BudgetStatus;
use crate::store::{self, Budget, NewUser, Page, PageRequest, Patch, Store, StoreError};

/// Prints `value` as JSON on stdout.
pub(super) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    Ok(out!("{}", serde_json::to_string_pretty(value)?)?)
}

/// A whole list in the admin API's envelope: every page was read, so no cursor.
pub(super) fn list<T>(data: Vec<T>) -> Page<T> {
    Page { data, next_cursor: None }
}

/// Every item of a paged listing, page after page.
pub(super) async fn all_pages<T, F, Fut>(fetch: F) -> Result<Vec<T>, StoreError>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut out = Vec::new();
    let mut req = PageRequest { cursor: None, limit: 1000 };
    loop {
        let page = fetch(req.clone()).await?;
        out.extend(page.data);
        match page.next_cursor.and_then(|c| Uuid::parse_str(&c).ok()) {
            Some(cursor) => req.cursor = Some(cursor),
            None => return Ok(out),
        }
    }
}

/// What the admin API answers to a DELETE.
fn deleted(id: Uuid) -> serde_json::Value {
    serde_json::json!({"id": id, "deleted": true})
}

fn archive() -> Patch {
    Patch { archived: Some(true), ..Patch::default() }
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn state(archived_at: Option<DateTime<Utc>>) -> &'static str {
    if archived_at.is_some() {
        "archived"
    } else {
        "active"
    }
}

pub(super) async fn organization(store: &Store, cmd: OrgCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        OrgCommand::Create { name } => {
            let o = store.create_organization(name.trim()).await?;
            if out.json {
                return print_json(&o);
            }
            out!("{}\t{}", o.id, o.name)?;
        }
        OrgCommand::List => {
            let all = all_pages(|page| async move { store.list_organizations(&page).await }).await?;
            if out.json {
                return print_json(&list(all));
            }
            out!("{:<36}  {:<16}  {:<8}  NAME", "ID", "CREATED", "STATE")?;
            for o in all {
                out!("{:<36}  {:<16}  {:<8}  {}", o.id, date(o.created_at), state(o.archived_at), o.name)?;
            }
        }
        OrgCommand::Archive { id } => {
            let o = store.update_organization(id, &archive()).await?;
            if out.json {
                return print_json(&o);
            }
            out!("archived organization {id}")?;
        }
    }
    Ok(())
}

pub(super) async fn project(store: &Store, cmd: ProjectCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        ProjectCommand::Create { organization_id, name } => {
            let p = store.create_project(organization_id, name.trim()).await?;
            if out.json {
                return print_json(&p);
            }
            out!("{}\t{}", p.id, p.name)?;
        }
        ProjectCommand::List { organization_id } => {
            let all =
                all_pages(|page| async move { store.list_projects(organization_id, &page).await }).await?;
            if out.json {
                return print_json(&list(all));
            }
            out!("{:<36}  {:<36}  {:<8}  NAME", "ID", "ORGANIZATION", "STATE")?;
            for p in all {
                out!("{:<36}  {:<36}  {:<8}  {}", p.id, p.organization_id, state(p.archived_at), p.name)?;
            }
        }
        ProjectCommand::Archive { id } => {
            let p = store.update_project(id, &archive()).await?;
            if out.json {
                return print_json(&p);
            }
            out!("archived project {id}")?;
        }
    }
    Ok(())
}

pub(super) async fn user(store: &Store, cmd: UserCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create { organization_id, external_id, email } => {
            let new = NewUser { organization_id, external_id: external_id.trim().to_owned(), email };
            let u = store.create_user(&new).await?;
            if out.json {
                return print_json(&u);
            }
            out!("{}\t{}", u.id, u.external_id)?;
        }
        UserCommand::List { organization_id } => {
            let all = all_pages(|page| async move { store.list_users(organization_id, &page).await }).await?;
            if out.json {
                return print_json(&list(all));
            }
            out!("{:<36}  {:<36}  {:<8}  EXTERNAL ID", "ID", "ORGANIZATION", "STATE")?;
            for u in all {
                out!(
                    "{:<36}  {:<36}  {:<8}  {}",
                    u.id,
                    u.organization_id,
                    state(u.archived_at),
                    u.external_id
                )?;
            }
        }
        UserCommand::Archive { id } => {
            let u = store.update_user(id, &archive()).await?;
            if out.json {
                return print_json(&u);
            }
            out!("archived user {id}")?;
        }
    }
    Ok(())
}

pub(super) async fn key(store: &Store, cmd: KeyCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create { user_id, project_id, name, expires_at } => {
            let req = crate::admin::requests::CreateKey { user_id, project_id, name, expires_at };
            let created = create_key(store, req).await.map_err(|e| match e {
                AdminError::Store(s) => anyhow::Error::new(s),
                other => anyhow::Error::new(UsageError(other.to_string())),
            })?;
            eprintln!("key {} created; it is shown once, store it now:", created.key.id);
            if out.json {
                return print_json(&created);
            }
            out!("{}", created.plaintext)?;
        }
        KeyCommand::List { user_id } => {
            let all = all_pages(|page| async move { store.list_keys(user_id, &page).await }).await?;
            if out.json {
                return print_json(&list(all));
            }
            out!("{:<36}  {:<11}  {:<8}  {:<36}  PROJECT", "ID", "PREFIX", "STATE", "USER")?;
            for k in all {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= Utc::now()) {
                    "expired"
                } else {
                    "active"
                };
                out!("{:<36}  {:<11}  {state:<8}  {:<36}  {}", k.id, k.prefix, k.user_id, k.project_id)?;
            }
        }
        KeyCommand::Revoke { id } => {
            let k = store.revoke_key(id).await?;
            if out.json {
                return print_json(&k);
            }
            out!("revoked key {id}")?;
        }
    }
    Ok(())
}

/// A budget's current window as `GET /v1/budgets/{id}` shows it. The CLI holds no
/// in-memory counters: spent is what the database has settled, reserved what replicas
/// hold in leases (PostgreSQL); a SQLite server's in-flight reservations are not visible.
pub(super) async fn budget_status(store: &Store, budget: Budget) -> Result<BudgetStatus, StoreError> {
    let now = Utc::now();
    let window_start = budget.period.start(now);
    let spent = store.window_spend(budget.scope_id, budget.period, window_start).await?;
    let reserved = match store.postgres() {
        Some(pg) => pg.window_leases(budget.scope_id, budget.period, window_start).await?,
        None => Decimal::ZERO,
    };
    Ok(BudgetStatus {
        remaining_usd: (budget.limit_usd - spent - reserved).normalize(),
        spent_usd: spent.normalize(),
        reserved_usd: reserved.normalize(),
        window_start,
        window_end: budget.period.end(now),
        budget,
    })
}

/// Every budget with its current window, of the given scope entities (all when none).
pub(super) async fn budget_statuses(
    store: &Store,
    scope_ids: &[Uuid],
) -> Result<Vec<BudgetStatus>, StoreError> {
    let budgets = all_pages(|page| async move { store.list_budgets(None, &page).await }).await?;
    let mut out = Vec::with_capacity(budgets.len());
    for b in budgets {
        if scope_ids.is_empty() || scope_ids.contains(&b.scope_id) {
            out.push(budget_status(store, b).await?);
        }
    }
    Ok(out)
}

pub(super) async fn budget(store: &Store, cmd: BudgetCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        BudgetCommand::Create { scope, scope_id, limit, period, soft } => {
            let b = store.create_budget(scope, scope_id, limit, period, !soft).await?;
            if out.json {
                return print_json(&budget_status(store, b).await?);
            }
            out!("{}\t{} {} {} ${}", b.id, b.scope.as_str(), b.scope_id, b.period.as_str(), b.limit_usd)?;
        }
        BudgetCommand::List => {
            let all = budget_statuses(store, &[]).await?;
            if out.json {
                return print_json(&list(all));
            }
            super::report::print_budget_use(&all)?;
        }
        BudgetCommand::SetLimit { id, limit } => {
            let patch = store::BudgetPatch { limit_usd: Some(limit), ..Default::default() };
            let b = store.update_budget(id, &patch).await?;
            if out.json {
                return print_json(&budget_status(store, b).await?);
            }
            out!("{}\tlimit ${}", b.id, b.limit_usd)?;
        }
        BudgetCommand::Delete { id } => {
            store.delete_budget(id).await?;
            if out.json {
                return print_json(&deleted(id));
            }
            out!("deleted budget {id}")?;
        }
    }
    Ok(())
}

pub(super) async fn alert_config(store: &Store, cmd: AlertConfigCommand, out: Output) -> anyhow::Result<()> {
    match cmd {
        AlertConfigCommand::Create { budget_id, threshold, webhook } => {
            let c = store.create_alert_config(budget_id, threshold, webhook.as_deref(), true).await?;
            if out.json {
                return print_json(&c);
            }
            out!("{}\t{}% of budget {}", c.id, c.threshold_percent, c.budget_id)?;
        }
        AlertConfigCommand::List { budget_id } => {
            let all = store.list_alert_configs(budget_id).await?;
            if out.json {
                return print_json(&list(all));
            }
            out!("{:<36}  {:<36}  {:>9}  WEBHOOK", "ID", "BUDGET", "THRESHOLD")?;
            for c in all {
                let webhook = c.webhook_url.as_deref().unwrap_or("-");
                out!("{:<36}  {:<36}  {:>8}%  {webhook}", c.id, c.budget_id, c.threshold_percent)?;
            }
        }
        AlertConfigCommand::Delete { id } => {
            store.delete_alert_config(id).await?;
            if out.json {
                return print_json(&deleted(id));
            }
            out!("deleted alert config {id}")?;
        }
    }
    Ok(())
}
