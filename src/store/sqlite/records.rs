//! The ledger's side of the SQLite store: batched cost-record inserts that update the
//! spend-window counters in the same transaction, and the read side (records, spend).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use chrono::Utc;
use futures_util::TryStreamExt;
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{opt_uuid_col, ts_col, uuid_col, SqliteStore};
use crate::store::rollup::{DayRow, Source};
use crate::store::to_i64;
use crate::store::windows;
use crate::store::{
    ts, CostRecord, GroupBy, Page, PageRequest, RecordFilter, Scope, SpendRow, StoreError, UsageSource,
    WindowMove, Written,
};
use crate::window::Period;

/// Rows per INSERT statement, well under SQLite's parameter limit; full chunks reuse one
/// cached prepared statement.
const ROWS_PER_INSERT: usize = 64;

/// Binds per inserted cost record (one per column).
const BINDS_PER_RECORD: usize = 27;

/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER`.
const _: () = assert!(ROWS_PER_INSERT * BINDS_PER_RECORD <= 32_766);

/// Spend windows read and upserted per statement (3 binds per key read, 9 per row
/// written).
const WINDOWS_PER_STATEMENT: usize = 256;

pub(super) fn decimal_col(row: &SqliteRow, col: &str) -> Result<Decimal, StoreError> {
    let s: String = row.try_get(col)?;
    Decimal::from_str(&s).map_err(|_| StoreError::Invalid(format!("bad decimal in column {col}: {s}")))
}

pub(super) fn opt_u64(row: &SqliteRow, col: &str) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(|n| u64::try_from(n).unwrap_or(0)))
}

pub(super) fn cost_record(row: &SqliteRow) -> Result<CostRecord, StoreError> {
    let source: String = row.try_get("usage_source")?;
    Ok(CostRecord {
        id: uuid_col(row, "id")?,
        request_id: uuid_col(row, "request_id")?,
        created_at: ts_col(row, "created_at")?,
        organization_id: uuid_col(row, "organization_id")?,
        project_id: uuid_col(row, "project_id")?,
        user_id: uuid_col(row, "user_id")?,
        api_key_id: opt_uuid_col(row, "api_key_id")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        endpoint: row.try_get("endpoint")?,
        input_tokens: opt_u64(row, "input_tokens")?,
        cached_input_tokens: opt_u64(row, "cached_input_tokens")?,
        cache_write_tokens: opt_u64(row, "cache_write_tokens")?,
        output_tokens: opt_u64(row, "output_tokens")?,
        reasoning_tokens: opt_u64(row, "reasoning_tokens")?,
        cost_usd: decimal_col(row, "cost_usd")?,
        status_code: u16::try_from(row.try_get::<i64, _>("status_code")?).unwrap_or(0),
        latency_ms: u64::try_from(row.try_get::<i64, _>("latency_ms")?).unwrap_or(0),
        streamed: row.try_get::<i64, _>("streamed")? != 0,
        usage_source: UsageSource::parse(&source)
            .ok_or_else(|| StoreError::Invalid(format!("bad usage_source {source}")))?,
        priced: row.try_get::<i64, _>("priced")? != 0,
        service_tier: row.try_get("service_tier")?,
        inference_geo: row.try_get("inference_geo")?,
        audio_input_tokens: opt_u64(row, "audio_input_tokens")?,
        audio_output_tokens: opt_u64(row, "audio_output_tokens")?,
        web_search_requests: opt_u64(row, "web_search_requests")?,
        web_fetch_requests: opt_u64(row, "web_fetch_requests")?,
    })
}

/// Appends the filter's conditions (all range or equality predicates on raw columns).
pub(super) fn push_filter(q: &mut QueryBuilder<'_, Sqlite>, f: &RecordFilter, time_col: &str) {
    q.push(" WHERE 1 = 1");
    let eq = |q: &mut QueryBuilder<'_, Sqlite>, col: &str, v: Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v);
        }
    };
    eq(q, "organization_id", f.organization_id.map(|v| v.to_string()));
    eq(q, "project_id", f.project_id.map(|v| v.to_string()));
    eq(q, "user_id", f.user_id.map(|v| v.to_string()));
    eq(q, "api_key_id", f.api_key_id.map(|v| v.to_string()));
    eq(q, "request_id", f.request_id.map(|v| v.to_string()));
    eq(q, "model", f.model.clone());
    eq(q, "provider", f.provider.clone());
    if let Some(from) = f.from {
        q.push(format!(" AND {time_col} >= ")).push_bind(ts(from));
    }
    if let Some(to) = f.to {
        q.push(format!(" AND {time_col} < ")).push_bind(ts(to));
    }
}

/// Adds new records to their spend windows (every scope, every period), inside the
/// transaction that inserted them: one read of the current totals and one upsert,
/// whatever the number of windows (money is added here, in Decimal, not in SQL).
async fn add_to_windows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[&CostRecord],
) -> Result<Vec<WindowMove>, StoreError> {
    // Formatted once per window, not per record.
    let deltas: Vec<_> = windows::deltas(rows)
        .into_iter()
        .map(|((id, period, start), delta)| (id, period, start, ts(start), delta))
        .collect();
    let mut moves = Vec::with_capacity(deltas.len());
    for chunk in deltas.chunks(WINDOWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT scope_id, period, window_start, spent_usd FROM ai_spend_windows
             WHERE (scope_id, period, window_start) IN (VALUES ",
        );
        let mut list = q.separated(", ");
        for (id, period, _, window_start, _) in chunk {
            list.push("(")
                .push_bind_unseparated(id.to_string())
                .push_unseparated(", ")
                .push_bind_unseparated(period.as_str())
                .push_unseparated(", ")
                .push_bind_unseparated(window_start.as_str())
                .push_unseparated(")");
        }
        q.push(")");
        let mut current: HashMap<(String, String, String), Decimal> = HashMap::new();
        for row in q.build().fetch_all(&mut **tx).await? {
            let key = (row.try_get("scope_id")?, row.try_get("period")?, row.try_get("window_start")?);
            current.insert(key, decimal_col(&row, "spent_usd")?);
        }
        let now = ts(Utc::now());
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO ai_spend_windows (scope, organization_id, project_id, user_id, period,
                window_start, spent_usd, requests, updated_at) ",
        );
        q.push_values(chunk, |mut b, (id, period, start, window_start, delta)| {
            let key = (id.to_string(), period.as_str().to_owned(), window_start.clone());
            let before = current.get(&key).copied().unwrap_or(Decimal::ZERO);
            let after = before + delta.cost;
            moves.push(WindowMove {
                scope: delta.scope,
                scope_id: *id,
                period: *period,
                window_start: *start,
                before,
                after,
            });
            let scoped = |s: Scope| (delta.scope == s).then(|| id.to_string());
            b.push_bind(delta.scope.as_str())
                .push_bind(scoped(Scope::Organization))
                .push_bind(scoped(Scope::Project))
                .push_bind(scoped(Scope::User))
                .push_bind(period.as_str())
                .push_bind(window_start.clone())
                .push_bind(after.normalize().to_string())
                .push_bind(delta.requests)
                .push_bind(now.clone());
        });
        q.push(
            " ON CONFLICT (scope_id, period, window_start) DO UPDATE SET spent_usd = excluded.spent_usd,
              requests = requests + excluded.requests, updated_at = excluded.updated_at",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(moves)
}

impl SqliteStore {
    /// Inserts a batch in one transaction; a request id already present is skipped (so a
    /// retried or replayed write cannot double-count) and only new rows move the spend
    /// counters. Returns how many rows were new and the windows they moved.
    pub async fn insert_cost_records(&self, batch: &[CostRecord]) -> Result<Written, StoreError> {
        let mut rows: Vec<&CostRecord> = batch.iter().collect();
        loop {
            if rows.is_empty() {
                return Ok(Written::default());
            }
            let mut tx = self.ledger.begin().await?;
            // Multi-row statements (each round trip to the driver's thread costs), and no
            // RETURNING: sending every inserted row back across threads cost a third of the
            // ledger's time. The row count says whether every record was new.
            let mut inserted = 0;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO ai_cost_records (id, request_id, created_at, organization_id, project_id, user_id,
                    api_key_id, provider, model, endpoint, input_tokens, cached_input_tokens, cache_write_tokens,
                    output_tokens, reasoning_tokens, cost_usd, status_code, latency_ms, streamed, usage_source, priced,
                    service_tier, inference_geo, audio_input_tokens, audio_output_tokens, web_search_requests,
                    web_fetch_requests) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(r.id.to_string())
                        .push_bind(r.request_id.to_string())
                        .push_bind(ts(r.created_at))
                        .push_bind(r.organization_id.to_string())
                        .push_bind(r.project_id.to_string())
                        .push_bind(r.user_id.to_string())
                        .push_bind(r.api_key_id.map(|k| k.to_string()))
                        .push_bind(r.provider.clone())
                        .push_bind(r.model.clone())
                        .push_bind(r.endpoint.clone())
                        .push_bind(to_i64(r.input_tokens))
                        .push_bind(to_i64(r.cached_input_tokens))
                        .push_bind(to_i64(r.cache_write_tokens))
                        .push_bind(to_i64(r.output_tokens))
                        .push_bind(to_i64(r.reasoning_tokens))
                        .push_bind(r.cost_usd.normalize().to_string())
                        .push_bind(i64::from(r.status_code))
                        .push_bind(to_i64(Some(r.latency_ms)))
                        .push_bind(r.streamed)
                        .push_bind(r.usage_source.as_str())
                        .push_bind(r.priced)
                        .push_bind(r.service_tier.clone())
                        .push_bind(r.inference_geo.clone())
                        .push_bind(to_i64(r.audio_input_tokens))
                        .push_bind(to_i64(r.audio_output_tokens))
                        .push_bind(to_i64(r.web_search_requests))
                        .push_bind(to_i64(r.web_fetch_requests));
                });
                q.push(" ON CONFLICT (request_id) DO NOTHING");
                inserted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            if inserted == rows.len() as u64 {
                let windows = add_to_windows(&mut tx, &rows).await?;
                super::rollup::add_to_rollups(&mut tx, &rows).await?;
                tx.commit().await?;
                return Ok(Written { inserted, windows });
            }
            // Some request ids were already recorded (a retried or replayed batch). Only
            // the new rows may move the counters: find them, then write those alone.
            tx.rollback().await?;
            let ids: Vec<String> = rows.iter().map(|r| r.request_id.to_string()).collect();
            let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let present: HashSet<String> = sqlx::query_scalar(
                "SELECT request_id FROM ai_cost_records WHERE request_id IN (SELECT value FROM json_each(?))",
            )
            .bind(ids)
            .fetch_all(&self.ledger)
            .await?
            .into_iter()
            .collect();
            if present.is_empty() {
                return Err(StoreError::Invalid("cost record insert skipped rows that do not exist".into()));
            }
            rows.retain(|r| !present.contains(&r.request_id.to_string()));
        }
    }

    /// Spend of one scope in one window, from the counter table.
    pub async fn window_spend(
        &self,
        scope_id: Uuid,
        period: Period,
        window_start: chrono::DateTime<Utc>,
    ) -> Result<Decimal, StoreError> {
        let spent: Option<String> = sqlx::query_scalar(
            "SELECT spent_usd FROM ai_spend_windows WHERE scope_id = ? AND period = ? AND window_start = ?",
        )
        .bind(scope_id.to_string())
        .bind(period.as_str())
        .bind(ts(window_start))
        .fetch_optional(&self.pool)
        .await?;
        match spent {
            Some(s) => Decimal::from_str(&s).map_err(|_| StoreError::Invalid(format!("bad spent_usd {s}"))),
            None => Ok(Decimal::ZERO),
        }
    }

    /// Cost records matching `filter`, oldest first, paged by id (ids are time-ordered).
    pub async fn list_cost_records(
        &self,
        filter: &RecordFilter,
        page: &PageRequest,
    ) -> Result<Page<CostRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM ai_cost_records");
        push_filter(&mut q, filter, "created_at");
        if let Some(c) = page.cursor {
            q.push(" AND id > ").push_bind(c.to_string());
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(page.limit()) + 1);
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut items = rows.iter().map(cost_record).collect::<Result<Vec<_>, _>>()?;
        let limit = page.limit() as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(Page { data: items, next_cursor })
    }

    /// Spend grouped as asked, from the records or from the hourly rollup; sums are
    /// exact (Decimal in Rust, never SQL REAL).
    pub async fn spend_from(
        &self,
        filter: &RecordFilter,
        group_by: GroupBy,
        by_day: bool,
        source: Source,
    ) -> Result<Vec<DayRow>, StoreError> {
        let (table, time_col, counts) = match source {
            Source::Records => ("ai_cost_records", "created_at", "1"),
            Source::Rollup(grain) => (grain.table(), grain.time_col(), "requests"),
        };
        let key_col = match group_by {
            GroupBy::Organization => "organization_id",
            GroupBy::Project => "project_id",
            GroupBy::User => "user_id",
            GroupBy::Key => "api_key_id",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Day => time_col,
        };
        let day_col = if by_day { time_col } else { "NULL" };
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {key_col} AS grp, {day_col} AS day, {counts} AS requests, input_tokens, output_tokens, \
             cost_usd FROM {table}"
        ));
        push_filter(&mut q, filter, time_col);
        // Times are stored as RFC 3339 text: the day is its first ten characters.
        let day_of = |t: Option<String>| t.map(|t| t.chars().take(10).collect::<String>());
        let mut groups: BTreeMap<(Option<String>, Option<String>), SpendRow> = BTreeMap::new();
        let mut rows = q.build().fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let mut group: Option<String> = row.try_get("grp")?;
            if group_by == GroupBy::Day {
                group = day_of(group);
            }
            let day = day_of(row.try_get("day")?);
            let entry = groups.entry((day, group.clone())).or_insert_with(|| SpendRow {
                group,
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: Decimal::ZERO,
            });
            entry.requests += opt_u64(&row, "requests")?.unwrap_or(0);
            entry.input_tokens += opt_u64(&row, "input_tokens")?.unwrap_or(0);
            entry.output_tokens += opt_u64(&row, "output_tokens")?.unwrap_or(0);
            entry.cost_usd += decimal_col(&row, "cost_usd")?;
        }
        Ok(groups.into_iter().map(|((day, _), row)| DayRow { day, row }).collect())
    }

    /// The newest cost records matching a filter, newest first.
    pub async fn latest_cost_records(
        &self,
        filter: &RecordFilter,
        limit: u32,
    ) -> Result<Vec<CostRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM ai_cost_records");
        push_filter(&mut q, filter, "created_at");
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(cost_record).collect()
    }
}
