//! The hourly spend rollup on SQLite: kept by the ledger's transaction, filled from the
//! records once for a database that had records before the rollup existed.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::records::{cost_record, decimal_col};
use super::SqliteStore;
use crate::store::rollup::{hourly_deltas, HourlyDelta};
use crate::store::{ts, CostRecord, StoreError};

/// Rollup rows read and upserted per statement (12 binds per row written).
const ROWS_PER_STATEMENT: usize = 256;
/// Records aggregated in memory between writes while filling the rollup.
const BACKFILL_CHUNK: i64 = 100_000;

/// Adds a batch's deltas to the rollup rows, in the caller's transaction. Counts are
/// added by SQL; money is added here, in Decimal (SQLite has no exact decimal type).
pub(super) async fn add_to_hourly(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    deltas: &[HourlyDelta],
) -> Result<(), StoreError> {
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, cost_usd FROM ai_spend_hourly WHERE id IN (");
        let mut ids = q.separated(", ");
        for d in chunk {
            ids.push_bind(d.id.to_string());
        }
        q.push(")");
        let mut current: HashMap<String, Decimal> = HashMap::new();
        for row in q.build().fetch_all(&mut **tx).await? {
            current.insert(row.try_get("id")?, decimal_col(&row, "cost_usd")?);
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO ai_spend_hourly (id, hour_start, organization_id, project_id, user_id, api_key_id,
                provider, model, requests, input_tokens, output_tokens, cost_usd) ",
        );
        q.push_values(chunk, |mut b, d| {
            let id = d.id.to_string();
            let total = current.get(&id).copied().unwrap_or(Decimal::ZERO) + d.cost_usd;
            b.push_bind(id)
                .push_bind(ts(d.hour_start))
                .push_bind(d.organization_id.to_string())
                .push_bind(d.project_id.to_string())
                .push_bind(d.user_id.to_string())
                .push_bind(d.api_key_id.map(|k| k.to_string()))
                .push_bind(d.provider.clone())
                .push_bind(d.model.clone())
                .push_bind(d.requests)
                .push_bind(d.input_tokens)
                .push_bind(d.output_tokens)
                .push_bind(total.normalize().to_string());
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET requests = requests + excluded.requests,
              input_tokens = input_tokens + excluded.input_tokens,
              output_tokens = output_tokens + excluded.output_tokens, cost_usd = excluded.cost_usd",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Fills the rollup from the records when the database had records before it existed
    /// (the state row says so); returns how many records were read. One transaction, which
    /// takes the write lock before it looks: two processes opening the database at once
    /// (a server and the CLI) fill it once, and a fill that stopped half-way left nothing.
    pub async fn backfill_hourly(&self) -> Result<u64, StoreError> {
        let filled: i64 = sqlx::query_scalar("SELECT filled FROM ai_spend_hourly_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        if filled == 1 {
            return Ok(0);
        }
        let mut tx = self.ledger.begin().await?;
        sqlx::query("UPDATE ai_spend_hourly_state SET filled = filled WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let filled: i64 = sqlx::query_scalar("SELECT filled FROM ai_spend_hourly_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        if filled == 1 {
            return Ok(0);
        }
        sqlx::query("DELETE FROM ai_spend_hourly").execute(&mut *tx).await?;
        let mut read = 0u64;
        let mut after = String::new();
        loop {
            let rows = sqlx::query("SELECT * FROM ai_cost_records WHERE id > ? ORDER BY id LIMIT ?")
                .bind(&after)
                .bind(BACKFILL_CHUNK)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            let records = rows.iter().map(cost_record).collect::<Result<Vec<CostRecord>, _>>()?;
            let refs: Vec<&CostRecord> = records.iter().collect();
            add_to_hourly(&mut tx, &hourly_deltas(&refs)).await?;
            read += records.len() as u64;
        }
        sqlx::query("UPDATE ai_spend_hourly_state SET filled = 1 WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(read)
    }
}
