//! Budgets (one table per level), alert configs and fired alerts on SQLite.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::{map_write_err, opt_ts_col, ts_col, uuid_col, SqliteStore};
use crate::store::{ts, Alert, AlertConfig, Budget, BudgetPatch, Page, PageRequest, Scope, StoreError};
use crate::window::Period;

/// The three budget tables as one relation, with the scope spelled out.
const ALL_BUDGETS: &str = "(SELECT 'organization' AS scope, id, organization_id AS scope_id, limit_usd, period, hard, created_at, updated_at FROM ai_organization_budgets
  UNION ALL SELECT 'project', id, project_id, limit_usd, period, hard, created_at, updated_at FROM ai_project_budgets
  UNION ALL SELECT 'user', id, user_id, limit_usd, period, hard, created_at, updated_at FROM ai_user_budgets)";

fn decimal(row: &SqliteRow, col: &str) -> Result<Decimal, StoreError> {
    let s: String = row.try_get(col)?;
    Decimal::from_str(&s).map_err(|_| StoreError::Invalid(format!("bad decimal in {col}: {s}")))
}

fn budget(row: &SqliteRow) -> Result<Budget, StoreError> {
    let scope: String = row.try_get("scope")?;
    let period: String = row.try_get("period")?;
    Ok(Budget {
        id: uuid_col(row, "id")?,
        scope: Scope::parse(&scope).ok_or_else(|| StoreError::Invalid(format!("bad scope {scope}")))?,
        scope_id: uuid_col(row, "scope_id")?,
        limit_usd: decimal(row, "limit_usd")?,
        period: Period::parse(&period).ok_or_else(|| StoreError::Invalid(format!("bad period {period}")))?,
        hard: row.try_get::<i64, _>("hard")? != 0,
        created_at: ts_col(row, "created_at")?,
        updated_at: ts_col(row, "updated_at")?,
    })
}

const ALERT_CONFIG_COLUMNS: &str =
    "id, coalesce(organization_budget_id, project_budget_id, user_budget_id) AS budget_id,
    threshold_percent, webhook_url, enabled, created_at";

fn alert_config(row: &SqliteRow) -> Result<AlertConfig, StoreError> {
    Ok(AlertConfig {
        id: uuid_col(row, "id")?,
        budget_id: uuid_col(row, "budget_id")?,
        threshold_percent: u32::try_from(row.try_get::<i64, _>("threshold_percent")?).unwrap_or(0),
        webhook_url: row.try_get("webhook_url")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_at: ts_col(row, "created_at")?,
    })
}

/// When a delivery claimed now runs out.
fn claim_end() -> String {
    ts(Utc::now() + crate::store::DELIVERY_CLAIM)
}

const ALERT_SELECT: &str =
    "SELECT a.*, coalesce(c.organization_budget_id, c.project_budget_id, c.user_budget_id) AS budget_id,
    c.webhook_url FROM ai_budget_alerts a JOIN ai_budget_alert_configs c ON c.id = a.alert_config_id";

fn alert(row: &SqliteRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: uuid_col(row, "id")?,
        alert_config_id: uuid_col(row, "alert_config_id")?,
        budget_id: uuid_col(row, "budget_id")?,
        window_start: ts_col(row, "window_start")?,
        threshold_percent: u32::try_from(row.try_get::<i64, _>("threshold_percent")?).unwrap_or(0),
        limit_usd: decimal(row, "limit_usd")?,
        spent_usd: decimal(row, "spent_usd")?,
        created_at: ts_col(row, "created_at")?,
        delivery_status: row.try_get("delivery_status")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        last_error: row.try_get("last_error")?,
        delivered_at: opt_ts_col(row, "delivered_at")?,
        webhook_url: row.try_get("webhook_url")?,
    })
}

impl SqliteStore {
    /// Creates a budget in its level's table; the scope entity must exist.
    pub async fn create_budget(
        &self,
        scope: Scope,
        scope_id: Uuid,
        limit_usd: Decimal,
        period: Period,
        hard: bool,
    ) -> Result<Budget, StoreError> {
        match scope {
            Scope::Organization => self.get_organization(scope_id).await.map(|_| ())?,
            Scope::Project => self.get_project(scope_id).await.map(|_| ())?,
            Scope::User => self.get_user(scope_id).await.map(|_| ())?,
        }
        let id = Uuid::now_v7();
        let now = ts(Utc::now());
        let sql = format!(
            "INSERT INTO {} (id, {}_id, limit_usd, period, hard, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            scope.budget_table(),
            scope.as_str()
        );
        sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope_id.to_string())
            .bind(limit_usd.normalize().to_string())
            .bind(period.as_str())
            .bind(hard)
            .bind(&now)
            .bind(&now)
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        self.get_budget(id).await
    }

    pub async fn get_budget(&self, id: Uuid) -> Result<Budget, StoreError> {
        let row = sqlx::query(&format!("SELECT * FROM {ALL_BUDGETS} WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("budget"))?;
        budget(&row)
    }

    /// Budgets, optionally of one scope entity, paged by id.
    pub async fn list_budgets(
        &self,
        scope_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<Budget>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM {ALL_BUDGETS} WHERE id > ? AND (? IS NULL OR scope_id = ?) ORDER BY id LIMIT ?"
        ))
        .bind(req.cursor.map(|c| c.to_string()).unwrap_or_default())
        .bind(scope_id.map(|s| s.to_string()))
        .bind(scope_id.map(|s| s.to_string()))
        .bind(i64::from(req.limit()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut items = rows.iter().map(budget).collect::<Result<Vec<_>, _>>()?;
        let limit = req.limit() as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|b| b.id.to_string())
        } else {
            None
        };
        Ok(Page { data: items, next_cursor })
    }

    /// Every budget of one scope entity (the admission cache loads these).
    pub async fn budgets_of(&self, scope: Scope, scope_id: Uuid) -> Result<Vec<Budget>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT '{}' AS scope, id, {}_id AS scope_id, limit_usd, period, hard, created_at, updated_at
             FROM {} WHERE {}_id = ? ORDER BY id",
            scope.as_str(),
            scope.as_str(),
            scope.budget_table(),
            scope.as_str()
        ))
        .bind(scope_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(budget).collect()
    }

    pub async fn update_budget(&self, id: Uuid, patch: &BudgetPatch) -> Result<Budget, StoreError> {
        let current = self.get_budget(id).await?;
        let sql = format!(
            "UPDATE {} SET limit_usd = ?, period = ?, hard = ?, updated_at = ? WHERE id = ?",
            current.scope.budget_table()
        );
        sqlx::query(&sql)
            .bind(patch.limit_usd.unwrap_or(current.limit_usd).normalize().to_string())
            .bind(patch.period.unwrap_or(current.period).as_str())
            .bind(patch.hard.unwrap_or(current.hard))
            .bind(ts(Utc::now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        self.get_budget(id).await
    }

    pub async fn delete_budget(&self, id: Uuid) -> Result<Budget, StoreError> {
        let current = self.get_budget(id).await?;
        sqlx::query(&format!("DELETE FROM {} WHERE id = ?", current.scope.budget_table()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        Ok(current)
    }

    pub async fn create_alert_config(
        &self,
        budget_id: Uuid,
        threshold_percent: u32,
        webhook_url: Option<&str>,
        enabled: bool,
    ) -> Result<AlertConfig, StoreError> {
        let b = self.get_budget(budget_id).await?;
        let id = Uuid::now_v7();
        let column = match b.scope {
            Scope::Organization => "organization_budget_id",
            Scope::Project => "project_budget_id",
            Scope::User => "user_budget_id",
        };
        sqlx::query(&format!(
            "INSERT INTO ai_budget_alert_configs (id, {column}, threshold_percent, webhook_url, enabled, created_at)
             VALUES (?, ?, ?, ?, ?, ?)"
        ))
        .bind(id.to_string())
        .bind(budget_id.to_string())
        .bind(i64::from(threshold_percent))
        .bind(webhook_url)
        .bind(enabled)
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("alert config", e))?;
        self.bump_admin_version().await?;
        self.get_alert_config(id).await
    }

    pub async fn get_alert_config(&self, id: Uuid) -> Result<AlertConfig, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {ALERT_CONFIG_COLUMNS} FROM ai_budget_alert_configs WHERE id = ?"))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("alert config"))?;
        alert_config(&row)
    }

    /// Alert configs, of one budget or all.
    pub async fn list_alert_configs(&self, budget_id: Option<Uuid>) -> Result<Vec<AlertConfig>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_CONFIG_COLUMNS} FROM ai_budget_alert_configs
             WHERE ?1 IS NULL OR organization_budget_id = ?1 OR project_budget_id = ?1 OR user_budget_id = ?1 ORDER BY id"
        ))
        .bind(budget_id.map(|b| b.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_config).collect()
    }

    pub async fn delete_alert_config(&self, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM ai_budget_alert_configs WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("alert config"));
        }
        self.bump_admin_version().await
    }

    /// Records a fired alert; `None` when this config already fired in this window (the
    /// unique key decides, also across replicas).
    pub async fn insert_alert(
        &self,
        config: &AlertConfig,
        window_start: DateTime<Utc>,
        limit_usd: Decimal,
        spent_usd: Decimal,
    ) -> Result<Option<Alert>, StoreError> {
        let id = Uuid::now_v7();
        let status = if config.webhook_url.is_some() { "pending" } else { "no_webhook" };
        let done = sqlx::query(
            "INSERT INTO ai_budget_alerts (id, alert_config_id, window_start, threshold_percent, limit_usd, spent_usd,
                created_at, delivery_status, attempts, claimed_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (alert_config_id, window_start) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(config.id.to_string())
        .bind(ts(window_start))
        .bind(i64::from(config.threshold_percent))
        .bind(limit_usd.normalize().to_string())
        .bind(spent_usd.normalize().to_string())
        .bind(ts(Utc::now()))
        .bind(status)
        .bind((status == "pending").then(claim_end))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_alert(id).await.map(Some)
    }

    pub async fn get_alert(&self, id: Uuid) -> Result<Alert, StoreError> {
        let row = sqlx::query(&format!("{ALERT_SELECT} WHERE a.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("alert"))?;
        alert(&row)
    }

    /// Fired alerts, of one budget or all, oldest first.
    pub async fn list_alerts(
        &self,
        budget_id: Option<Uuid>,
        req: &PageRequest,
    ) -> Result<Page<Alert>, StoreError> {
        let rows = sqlx::query(&format!(
            "{ALERT_SELECT}
             WHERE (?1 IS NULL OR c.organization_budget_id = ?1 OR c.project_budget_id = ?1 OR c.user_budget_id = ?1)
               AND (?2 IS NULL OR a.id > ?2)
             ORDER BY a.id LIMIT ?3"
        ))
        .bind(budget_id.map(|b| b.to_string()))
        .bind(req.cursor.map(|c| c.to_string()))
        .bind(i64::from(req.limit()) + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(alert).collect::<Result<Vec<_>, _>>()?;
        Ok(crate::store::page(items, req.limit(), |a| a.id))
    }

    /// The newest alerts of some alert configs, newest first (by the configs' index).
    pub async fn latest_alerts(&self, config_ids: &[Uuid], limit: u32) -> Result<Vec<Alert>, StoreError> {
        if config_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!("{ALERT_SELECT} WHERE a.alert_config_id IN ("));
        let mut list = q.separated(", ");
        for id in config_ids {
            list.push_bind(id.to_string());
        }
        q.push(") ORDER BY a.created_at DESC, a.id DESC LIMIT ").push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(alert).collect()
    }

    /// Alerts whose webhook has not been delivered yet (retried after a restart).
    pub async fn pending_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let rows =
            sqlx::query(&format!("{ALERT_SELECT} WHERE a.delivery_status = 'pending' ORDER BY a.created_at"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(alert).collect()
    }

    /// Takes over pending deliveries whose claim ran out (one process: no contention).
    pub async fn claim_pending_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE ai_budget_alerts SET claimed_until = ?
             WHERE id IN (SELECT id FROM ai_budget_alerts
                          WHERE delivery_status = 'pending' AND (claimed_until IS NULL OR claimed_until < ?)
                          ORDER BY created_at, id LIMIT 1000)
             RETURNING id",
        )
        .bind(claim_end())
        .bind(ts(Utc::now()))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let id = Uuid::parse_str(&id).map_err(|_| StoreError::Invalid("bad alert id".into()))?;
            claimed.push(self.get_alert(id).await?);
        }
        claimed.sort_by_key(|a| (a.created_at, a.id));
        Ok(claimed)
    }

    /// Gives up claims on pending deliveries.
    pub async fn release_alert_claims(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query(
                "UPDATE ai_budget_alerts SET claimed_until = NULL WHERE id = ? AND delivery_status = 'pending'",
            )
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Stores the outcome of a delivery attempt.
    pub async fn record_delivery(
        &self,
        id: Uuid,
        status: &str,
        attempts: u32,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let delivered_at = (status == "delivered").then(|| ts(Utc::now()));
        sqlx::query(
            "UPDATE ai_budget_alerts SET delivery_status = ?, attempts = ?, last_error = ?, delivered_at = ?,
                claimed_until = ? WHERE id = ?",
        )
        .bind(status)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(delivered_at)
        .bind((status == "pending").then(claim_end))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
