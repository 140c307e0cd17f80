//! The ledger's side of the PostgreSQL store: batched cost-record inserts that update the
//! spend-window counters in the same transaction, and the read side (records, spend).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{decimal_col, leases, push_page, PgStore};
use crate::store::rollup::{DayRow, Source};
use crate::store::windows::{self, WindowKey};
use crate::store::{page, to_i64};
use crate::store::{
    CostRecord, GroupBy, Page, PageRequest, RecordFilter, Scope, SpendRow, StoreError, UsageSource,
    WindowMove, Written,
};
use crate::window::Period;

/// Rows per INSERT statement, well under PostgreSQL's parameter limit.
const ROWS_PER_INSERT: usize = 1000;

/// Binds per inserted cost record (one per column).
const BINDS_PER_RECORD: usize = 27;

/// PostgreSQL's bind parameters per statement (a 16-bit count).
const _: () = assert!(ROWS_PER_INSERT * BINDS_PER_RECORD <= 65_535);

/// Spend windows upserted per statement (9 binds each).
const WINDOWS_PER_STATEMENT: usize = 1000;

fn opt_u64(row: &PgRow, col: &str) -> Result<Option<u64>, StoreError> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(|n| u64::try_from(n).unwrap_or(0)))
}

pub(super) fn u64_col(row: &PgRow, col: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.try_get::<i64, _>(col)?).unwrap_or(0))
}

pub(super) fn cost_record(row: &PgRow) -> Result<CostRecord, StoreError> {
    let source: String = row.try_get("usage_source")?;
    Ok(CostRecord {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        created_at: row.try_get("created_at")?,
        organization_id: row.try_get("organization_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        api_key_id: row.try_get("api_key_id")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        endpoint: row.try_get("endpoint")?,
        input_tokens: opt_u64(row, "input_tokens")?,
        cached_input_tokens: opt_u64(row, "cached_input_tokens")?,
        cache_write_tokens: opt_u64(row, "cache_write_tokens")?,
        output_tokens: opt_u64(row, "output_tokens")?,
        reasoning_tokens: opt_u64(row, "reasoning_tokens")?,
        cost_usd: decimal_col(row, "cost_usd")?,
        status_code: u16::try_from(row.try_get::<i32, _>("status_code")?).unwrap_or(0),
        latency_ms: u64_col(row, "latency_ms")?,
        streamed: row.try_get("streamed")?,
        usage_source: UsageSource::parse(&source)
            .ok_or_else(|| StoreError::Invalid(format!("bad usage_source {source}")))?,
        priced: row.try_get("priced")?,
        service_tier: row.try_get("service_tier")?,
        inference_geo: row.try_get("inference_geo")?,
        audio_input_tokens: opt_u64(row, "audio_input_tokens")?,
        audio_output_tokens: opt_u64(row, "audio_output_tokens")?,
        web_search_requests: opt_u64(row, "web_search_requests")?,
        web_fetch_requests: opt_u64(row, "web_fetch_requests")?,
    })
}

/// Appends the filter's conditions (all range or equality predicates on raw columns, so
/// the (scope, created_at) indexes serve them).
pub(super) fn push_filter(q: &mut QueryBuilder<'_, Postgres>, f: &RecordFilter, time_col: &str) {
    q.push(" WHERE TRUE");
    let ids = [
        ("organization_id", f.organization_id),
        ("project_id", f.project_id),
        ("user_id", f.user_id),
        ("api_key_id", f.api_key_id),
        ("request_id", f.request_id),
    ];
    for (col, v) in ids {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v);
        }
    }
    for (col, v) in [("model", &f.model), ("provider", &f.provider)] {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    }
    if let Some(from) = f.from {
        q.push(format!(" AND {time_col} >= ")).push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(format!(" AND {time_col} < ")).push_bind(to);
    }
}

/// Adds new records to their spend windows (every scope, every period), inside the
/// transaction that inserted them. The money is added by the database, on NUMERIC, so
/// concurrent replicas adding to the same window cannot lose each other's spend; the
/// new totals come back so alerts see the window's real movement across replicas.
async fn add_to_windows(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[&CostRecord],
) -> Result<Vec<WindowMove>, StoreError> {
    // Key order (see windows::deltas); one entry per window also keeps a statement from
    // touching a row twice, which ON CONFLICT DO UPDATE refuses.
    let deltas: Vec<_> = windows::deltas(rows).into_iter().collect();
    let now = Utc::now();
    let mut moves = Vec::with_capacity(deltas.len());
    for chunk in deltas.chunks(WINDOWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO ai_spend_windows (scope, organization_id, project_id, user_id, period,
                window_start, spent_usd, requests, updated_at) ",
        );
        q.push_values(chunk, |mut b, ((id, period, window_start), delta)| {
            let scoped = |s: Scope| (delta.scope == s).then_some(*id);
            b.push_bind(delta.scope.as_str())
                .push_bind(scoped(Scope::Organization))
                .push_bind(scoped(Scope::Project))
                .push_bind(scoped(Scope::User))
                .push_bind(period.as_str())
                .push_bind(*window_start)
                .push_bind(delta.cost.normalize())
                .push_bind(delta.requests)
                .push_bind(now);
        });
        q.push(
            " ON CONFLICT (scope_id, period, window_start) DO UPDATE SET
                spent_usd = ai_spend_windows.spent_usd + excluded.spent_usd,
                requests = ai_spend_windows.requests + excluded.requests,
                updated_at = excluded.updated_at
              RETURNING scope_id, period, window_start, spent_usd",
        );
        // Each distinct row count is a distinct statement: only the full-size one is worth
        // a place in the connection's prepared-statement cache.
        let returned =
            q.build().persistent(chunk.len() == WINDOWS_PER_STATEMENT).fetch_all(&mut **tx).await?;
        let mut totals: HashMap<WindowKey, Decimal> = HashMap::with_capacity(returned.len());
        for row in &returned {
            let period: String = row.try_get("period")?;
            let period =
                Period::parse(&period).ok_or_else(|| StoreError::Invalid(format!("bad period {period}")))?;
            totals.insert(
                (row.try_get("scope_id")?, period, row.try_get("window_start")?),
                decimal_col(row, "spent_usd")?,
            );
        }
        for (key, delta) in chunk {
            let after = totals
                .get(key)
                .copied()
                .ok_or_else(|| StoreError::Invalid("spend window upsert lost a row".into()))?;
            moves.push(WindowMove {
                scope: delta.scope,
                scope_id: key.0,
                period: key.1,
                window_start: key.2,
                before: (after - delta.cost).normalize(),
                after,
            });
        }
    }
    Ok(moves)
}

impl PgStore {
    /// Inserts a batch in one transaction; a request id already present is skipped (so a
    /// retried or replayed write cannot double-count) and only new rows move the spend
    /// counters, and the leases this replica holds on those windows shrink by the same
    /// amounts (the spend moved from lease to settled). Returns how many rows were new and
    /// the windows they moved.
    pub async fn insert_cost_records(&self, batch: &[CostRecord]) -> Result<Written, StoreError> {
        if batch.is_empty() {
            return Ok(Written::default());
        }
        // Request-id order (stable, so the first of two records sharing one wins): two
        // replicas replaying overlapping batches then claim ids in the same order and
        // cannot deadlock on the unique index.
        let mut rows: Vec<&CostRecord> = batch.iter().collect();
        rows.sort_by_key(|r| r.request_id);
        let _rows = self.lock_lease_rows().await;
        let mut tx = self.pool.begin().await?;
        let mut inserted: HashSet<(Uuid, Uuid)> = HashSet::new();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO ai_cost_records (id, request_id, created_at, organization_id, project_id, user_id,
                api_key_id, provider, model, endpoint, input_tokens, cached_input_tokens, cache_write_tokens,
                output_tokens, reasoning_tokens, cost_usd, status_code, latency_ms, streamed, usage_source, priced,
                service_tier, inference_geo, audio_input_tokens, audio_output_tokens, web_search_requests,
                web_fetch_requests) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.request_id)
                    .push_bind(r.created_at)
                    .push_bind(r.organization_id)
                    .push_bind(r.project_id)
                    .push_bind(r.user_id)
                    .push_bind(r.api_key_id)
                    .push_bind(r.provider.clone())
                    .push_bind(r.model.clone())
                    .push_bind(r.endpoint.clone())
                    .push_bind(to_i64(r.input_tokens))
                    .push_bind(to_i64(r.cached_input_tokens))
                    .push_bind(to_i64(r.cache_write_tokens))
                    .push_bind(to_i64(r.output_tokens))
                    .push_bind(to_i64(r.reasoning_tokens))
                    .push_bind(r.cost_usd.normalize())
                    .push_bind(i32::from(r.status_code))
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
            q.push(" ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id");
            let returned = q.build().persistent(chunk.len() == ROWS_PER_INSERT).fetch_all(&mut *tx).await?;
            for row in returned {
                inserted.insert((row.try_get("id")?, row.try_get("request_id")?));
            }
        }
        // Removing as we match makes each returned row account for exactly one record.
        let new: Vec<&CostRecord> =
            rows.into_iter().filter(|r| inserted.remove(&(r.id, r.request_id))).collect();
        let windows = if new.is_empty() { Vec::new() } else { add_to_windows(&mut tx, &new).await? };
        super::rollup::add_to_rollups(&mut tx, &new).await?;
        if self.holds_leases() {
            leases::consume(&mut tx, self.replica_id(), &windows).await?;
        }
        tx.commit().await?;
        Ok(Written { inserted: new.len() as u64, windows })
    }

    /// Spend of one scope in one window, from the counter table.
    pub async fn window_spend(
        &self,
        scope_id: Uuid,
        period: Period,
        window_start: DateTime<Utc>,
    ) -> Result<Decimal, StoreError> {
        let spent: Option<Decimal> = sqlx::query_scalar(
            "SELECT spent_usd FROM ai_spend_windows WHERE scope_id = $1 AND period = $2 AND window_start = $3",
        )
        .bind(scope_id)
        .bind(period.as_str())
        .bind(window_start)
        .fetch_optional(&self.pool)
        .await?;
        Ok(spent.map(|s| s.normalize()).unwrap_or(Decimal::ZERO))
    }

    /// Cost records matching `filter`, oldest first, paged by id (ids are time-ordered).
    pub async fn list_cost_records(
        &self,
        filter: &RecordFilter,
        page_req: &PageRequest,
    ) -> Result<Page<CostRecord>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM ai_cost_records");
        push_filter(&mut q, filter, "created_at");
        push_page(&mut q, "id", page_req);
        let rows = q.build().fetch_all(&self.pool).await?;
        let items = rows.iter().map(cost_record).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, page_req.limit(), |r| r.id))
    }

    /// Spend grouped as asked, from the records or from the hourly rollup, summed by
    /// the database (NUMERIC: exact).
    pub async fn spend_from(
        &self,
        filter: &RecordFilter,
        group_by: GroupBy,
        by_day: bool,
        source: Source,
    ) -> Result<Vec<DayRow>, StoreError> {
        let (table, time_col, counts) = match source {
            Source::Records => ("ai_cost_records", "created_at", "count(*)"),
            Source::Rollup(grain) => (grain.table(), grain.time_col(), "coalesce(sum(requests), 0)::BIGINT"),
        };
        let day = format!("to_char({time_col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')");
        let key = match group_by {
            GroupBy::Organization => "organization_id::text",
            GroupBy::Project => "project_id::text",
            GroupBy::User => "user_id::text",
            GroupBy::Key => "api_key_id::text",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Day => day.as_str(),
        };
        // COLLATE "C" orders groups bytewise, as the SQLite side's BTreeMap of strings
        // does; the database's default collation may not.
        let day_col = if by_day { day.as_str() } else { "NULL::text" };
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT ({key}) COLLATE \"C\" AS grp, {day_col} AS day, {counts} AS requests,
                coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
                coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
                coalesce(sum(cost_usd), 0) AS cost_usd
             FROM {table}"
        ));
        push_filter(&mut q, filter, time_col);
        q.push(" GROUP BY 1, 2 ORDER BY 2, 1 NULLS FIRST");
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(DayRow {
                    day: row.try_get("day")?,
                    row: SpendRow {
                        group: row.try_get("grp")?,
                        requests: u64_col(row, "requests")?,
                        input_tokens: u64_col(row, "input_tokens")?,
                        output_tokens: u64_col(row, "output_tokens")?,
                        cost_usd: decimal_col(row, "cost_usd")?,
                    },
                })
            })
            .collect()
    }

    /// The newest cost records matching a filter, newest first.
    pub async fn latest_cost_records(
        &self,
        filter: &RecordFilter,
        limit: u32,
    ) -> Result<Vec<CostRecord>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM ai_cost_records");
        push_filter(&mut q, filter, "created_at");
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ").push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(cost_record).collect()
    }
}
