//! The hourly spend rollup on PostgreSQL: kept by the ledger's transaction (the database
//! adds the money, on NUMERIC), filled from the records once for a database that had
//! records before the rollup existed.

use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::records::cost_record;
use super::PgStore;
use crate::store::rollup::{hourly_deltas, HourlyDelta};
use crate::store::{CostRecord, StoreError};

/// Rollup rows upserted per statement (12 binds each, well under 65535).
const ROWS_PER_STATEMENT: usize = 1000;
/// Records aggregated in memory between writes while filling the rollup.
const BACKFILL_CHUNK: i64 = 100_000;

/// Adds a batch's deltas to the rollup rows, in the caller's transaction, in id order.
pub(super) async fn add_to_hourly(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    deltas: &[HourlyDelta],
) -> Result<(), StoreError> {
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO ai_spend_hourly (id, hour_start, organization_id, project_id, user_id, api_key_id,
                provider, model, requests, input_tokens, output_tokens, cost_usd) ",
        );
        q.push_values(chunk, |mut b, d| {
            b.push_bind(d.id)
                .push_bind(d.hour_start)
                .push_bind(d.organization_id)
                .push_bind(d.project_id)
                .push_bind(d.user_id)
                .push_bind(d.api_key_id)
                .push_bind(d.provider.clone())
                .push_bind(d.model.clone())
                .push_bind(d.requests)
                .push_bind(d.input_tokens)
                .push_bind(d.output_tokens)
                .push_bind(d.cost_usd.normalize());
        });
        q.push(
            " ON CONFLICT (id) DO UPDATE SET requests = ai_spend_hourly.requests + excluded.requests,
              input_tokens = ai_spend_hourly.input_tokens + excluded.input_tokens,
              output_tokens = ai_spend_hourly.output_tokens + excluded.output_tokens,
              cost_usd = ai_spend_hourly.cost_usd + excluded.cost_usd",
        );
        q.build().persistent(chunk.len() == ROWS_PER_STATEMENT).execute(&mut **tx).await?;
    }
    Ok(())
}

impl PgStore {
    /// Fills the rollup from the records when the database had records before it existed
    /// (the state row says so); returns how many records were read. One transaction, on
    /// one connection, holding the state row: replicas starting together fill it once,
    /// and a fill that stopped half-way left nothing.
    pub async fn backfill_hourly(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let filled: bool =
            sqlx::query_scalar("SELECT filled FROM ai_spend_hourly_state WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        if filled {
            return Ok(0);
        }
        sqlx::query("DELETE FROM ai_spend_hourly").execute(&mut *tx).await?;
        let mut read = 0u64;
        let mut after = Uuid::nil();
        loop {
            let rows = sqlx::query("SELECT * FROM ai_cost_records WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
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
        sqlx::query("UPDATE ai_spend_hourly_state SET filled = true WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(read)
    }
}
