//! Budgets (one table per level), alert configs and fired alerts on PostgreSQL.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{decimal_col, map_write_err, page, push_page, to_i32, u32_col, PgStore};
use crate::store::{Alert, AlertConfig, Budget, BudgetPatch, Page, PageRequest, Scope, StoreError};
use crate::window::Period;

/// The three budget tables as one relation, with the scope spelled out.
const ALL_BUDGETS: &str = "(SELECT 'organization' AS scope, id, organization_id AS scope_id, limit_usd, period, hard, created_at, updated_at FROM ai_organization_budgets
  UNION ALL SELECT 'project', id, project_id, limit_usd, period, hard, created_at, updated_at FROM ai_project_budgets
  UNION ALL SELECT 'user', id, user_id, limit_usd, period, hard, created_at, updated_at FROM ai_user_budgets) b";

fn budget(row: &PgRow) -> Result<Budget, StoreError> {
    let scope: String = row.try_get("scope")?;
    let period: String = row.try_get("period")?;
    Ok(Budget {
        id: row.try_get("id")?,
        scope: Scope::parse(&scope).ok_or_else(|| StoreError::Invalid(format!("bad scope {scope}")))?,
        scope_id: row.try_get("scope_id")?,
        limit_usd: decimal_col(row, "limit_usd")?,
        period: Period::parse(&period).ok_or_else(|| StoreError::Invalid(format!("bad period {period}")))?,
        hard: row.try_get("hard")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const ALERT_CONFIG_COLUMNS: &str =
    "id, coalesce(organization_budget_id, project_budget_id, user_budget_id) AS budget_id,
    threshold_percent, webhook_url, enabled, created_at";

fn alert_config(row: &PgRow) -> Result<AlertConfig, StoreError> {
    Ok(AlertConfig {
        id: row.try_get("id")?,
        budget_id: row.try_get("budget_id")?,
        threshold_percent: u32_col(row, "threshold_percent")?,
        webhook_url: row.try_get("webhook_url")?,
        enabled: row.try_get("enabled")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The delivery claim in milliseconds, as SQL binds it.
fn claim_ms() -> i64 {
    i64::try_from(crate::store::DELIVERY_CLAIM.as_millis()).unwrap_or(i64::MAX)
}

const ALERT_SELECT: &str =
    "SELECT a.*, coalesce(c.organization_budget_id, c.project_budget_id, c.user_budget_id) AS budget_id,
    c.webhook_url FROM ai_budget_alerts a JOIN ai_budget_alert_configs c ON c.id = a.alert_config_id";

fn alert(row: &PgRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: row.try_get("id")?,
        alert_config_id: row.try_get("alert_config_id")?,
        budget_id: row.try_get("budget_id")?,
        window_start: row.try_get("window_start")?,
        threshold_percent: u32_col(row, "threshold_percent")?,
        limit_usd: decimal_col(row, "limit_usd")?,
        spent_usd: decimal_col(row, "spent_usd")?,
        created_at: row.try_get("created_at")?,
        delivery_status: row.try_get("delivery_status")?,
        attempts: u32_col(row, "attempts")?,
        last_error: row.try_get("last_error")?,
        delivered_at: row.try_get("delivered_at")?,
        webhook_url: row.try_get("webhook_url")?,
    })
}

/// Appends a match of `budget_id` against the three budget columns of the alert configs
/// aliased `prefix` (empty for the bare table), or nothing for "all".
fn push_budget_match(q: &mut QueryBuilder<'_, Postgres>, prefix: &str, budget_id: Option<Uuid>) {
    if let Some(b) = budget_id {
        q.push(format!(" AND ({prefix}organization_budget_id = "))
            .push_bind(b)
            .push(format!(" OR {prefix}project_budget_id = "))
            .push_bind(b)
            .push(format!(" OR {prefix}user_budget_id = "))
            .push_bind(b)
            .push(")");
    }
}

impl PgStore {
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
        let now = Utc::now();
        let sql = format!(
            "INSERT INTO {} (id, {}_id, limit_usd, period, hard, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            scope.budget_table(),
            scope.as_str()
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(scope_id)
            .bind(limit_usd.normalize())
            .bind(period.as_str())
            .bind(hard)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        self.get_budget(id).await
    }

    /// One budget, whatever its level.
    pub async fn get_budget(&self, id: Uuid) -> Result<Budget, StoreError> {
        let row = sqlx::query(&format!("SELECT * FROM {ALL_BUDGETS} WHERE id = $1"))
            .bind(id)
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
        let mut q = QueryBuilder::<Postgres>::new(format!("SELECT * FROM {ALL_BUDGETS} WHERE TRUE"));
        if let Some(s) = scope_id {
            q.push(" AND scope_id = ").push_bind(s);
        }
        push_page(&mut q, "id", req);
        let rows = q.build().fetch_all(&self.pool).await?;
        let items = rows.iter().map(budget).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, req.limit(), |b| b.id))
    }

    /// Every budget of one scope entity (the admission cache loads these).
    pub async fn budgets_of(&self, scope: Scope, scope_id: Uuid) -> Result<Vec<Budget>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT '{}' AS scope, id, {}_id AS scope_id, limit_usd, period, hard, created_at, updated_at
             FROM {} WHERE {}_id = $1 ORDER BY id",
            scope.as_str(),
            scope.as_str(),
            scope.budget_table(),
            scope.as_str()
        ))
        .bind(scope_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(budget).collect()
    }

    /// Changes a budget's limit, period or hardness.
    pub async fn update_budget(&self, id: Uuid, patch: &BudgetPatch) -> Result<Budget, StoreError> {
        let current = self.get_budget(id).await?;
        let sql = format!(
            "UPDATE {} SET limit_usd = $1, period = $2, hard = $3, updated_at = $4 WHERE id = $5",
            current.scope.budget_table()
        );
        sqlx::query(&sql)
            .bind(patch.limit_usd.unwrap_or(current.limit_usd).normalize())
            .bind(patch.period.unwrap_or(current.period).as_str())
            .bind(patch.hard.unwrap_or(current.hard))
            .bind(Utc::now())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        self.get_budget(id).await
    }

    /// Deletes a budget with its alert configs; returns what was deleted.
    pub async fn delete_budget(&self, id: Uuid) -> Result<Budget, StoreError> {
        let current = self.get_budget(id).await?;
        sqlx::query(&format!("DELETE FROM {} WHERE id = $1", current.scope.budget_table()))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| map_write_err("budget", e))?;
        self.bump_admin_version().await?;
        Ok(current)
    }

    /// Adds a threshold to a budget.
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
             VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(id)
        .bind(budget_id)
        .bind(to_i32(threshold_percent))
        .bind(webhook_url)
        .bind(enabled)
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(|e| map_write_err("alert config", e))?;
        self.bump_admin_version().await?;
        self.get_alert_config(id).await
    }

    /// One alert config.
    pub async fn get_alert_config(&self, id: Uuid) -> Result<AlertConfig, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {ALERT_CONFIG_COLUMNS} FROM ai_budget_alert_configs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound("alert config"))?;
        alert_config(&row)
    }

    /// Alert configs, of one budget or all.
    pub async fn list_alert_configs(&self, budget_id: Option<Uuid>) -> Result<Vec<AlertConfig>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {ALERT_CONFIG_COLUMNS} FROM ai_budget_alert_configs WHERE TRUE"
        ));
        push_budget_match(&mut q, "", budget_id);
        q.push(" ORDER BY id");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(alert_config).collect()
    }

    /// Deletes an alert config.
    pub async fn delete_alert_config(&self, id: Uuid) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM ai_budget_alert_configs WHERE id = $1")
            .bind(id)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, CASE WHEN $8 = 'pending' THEN $7 + $9 * interval '1 millisecond' END)
             ON CONFLICT (alert_config_id, window_start) DO NOTHING",
        )
        .bind(id)
        .bind(config.id)
        .bind(window_start)
        .bind(to_i32(config.threshold_percent))
        .bind(limit_usd.normalize())
        .bind(spent_usd.normalize())
        .bind(Utc::now())
        .bind(status)
        .bind(claim_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_alert(id).await.map(Some)
    }

    /// One fired alert.
    pub async fn get_alert(&self, id: Uuid) -> Result<Alert, StoreError> {
        let row = sqlx::query(&format!("{ALERT_SELECT} WHERE a.id = $1"))
            .bind(id)
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
        let mut q = QueryBuilder::<Postgres>::new(format!("{ALERT_SELECT} WHERE TRUE"));
        push_budget_match(&mut q, "c.", budget_id);
        push_page(&mut q, "a.id", req);
        let rows = q.build().fetch_all(&self.pool).await?;
        let items = rows.iter().map(alert).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, req.limit(), |a| a.id))
    }

    /// The newest alerts of some alert configs, newest first (by the configs' index).
    pub async fn latest_alerts(&self, config_ids: &[Uuid], limit: u32) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(&format!(
            "{ALERT_SELECT} WHERE a.alert_config_id = ANY($1) ORDER BY a.created_at DESC, a.id DESC LIMIT $2"
        ))
        .bind(config_ids)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert).collect()
    }

    /// Alerts whose webhook has not been delivered yet (retried after a restart).
    pub async fn pending_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        // The id breaks ties between alerts fired in the same microsecond, so every
        // replica retries in the same order.
        let rows = sqlx::query(&format!(
            "{ALERT_SELECT} WHERE a.delivery_status = 'pending' ORDER BY a.created_at, a.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert).collect()
    }

    /// Takes over pending deliveries whose claim ran out; concurrent callers skip each
    /// other's rows, so each delivery goes to one replica.
    pub async fn claim_pending_alerts(&self) -> Result<Vec<Alert>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE ai_budget_alerts SET claimed_until = now() + $1 * interval '1 millisecond'
             WHERE id IN (SELECT id FROM ai_budget_alerts
                          WHERE delivery_status = 'pending' AND (claimed_until IS NULL OR claimed_until < now())
                          ORDER BY created_at, id LIMIT 1000 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(claim_ms())
        .fetch_all(&self.pool)
        .await?;
        let rows = sqlx::query(&format!("{ALERT_SELECT} WHERE a.id = ANY($1) ORDER BY a.created_at, a.id"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(alert).collect()
    }

    /// Gives up claims on pending deliveries.
    pub async fn release_alert_claims(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ai_budget_alerts SET claimed_until = NULL WHERE id = ANY($1) AND delivery_status = 'pending'",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
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
        let delivered_at = (status == "delivered").then(Utc::now);
        sqlx::query(
            "UPDATE ai_budget_alerts SET delivery_status = $1, attempts = $2, last_error = $3, delivered_at = $4,
                claimed_until = CASE WHEN $1 = 'pending' THEN now() + $6 * interval '1 millisecond' END
             WHERE id = $5",
        )
        .bind(status)
        .bind(to_i32(attempts))
        .bind(error)
        .bind(delivered_at)
        .bind(id)
        .bind(claim_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
