//! The spend rollups on SQLite (hourly and daily): kept by the ledger's transaction,
//! filled from the records once for a database that had records before a rollup existed.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::records::{cost_record, decimal_col};
use super::SqliteStore;
use crate::store::rollup::{deltas, Delta, Grain};
use crate::store::{ts, CostRecord, StoreError};

/// Rollup rows read and upserted per statement (12 binds per row written).
const ROWS_PER_STATEMENT: usize = 256;
/// Records aggregated in memory between writes while filling the rollup.
const BACKFILL_CHUNK: i64 = 100_000;

/// Adds a batch's deltas to the rollup rows, in the caller's transaction. Counts are
/// added by SQL; money is added here, in Decimal (SQLite has no exact decimal type).
pub(super) async fn add_to_rollup(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    grain: Grain,
    deltas: &[Delta],
) -> Result<(), StoreError> {
    let (table, time_col) = (grain.table(), grain.time_col());
    for chunk in deltas.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT id, cost_usd FROM {table} WHERE id IN ("));
        let mut ids = q.separated(", ");
        for d in chunk {
            ids.push_bind(d.id.to_string());
        }
        q.push(")");
        let mut current: HashMap<String, Decimal> = HashMap::new();
        for row in q.build().fetch_all(&mut **tx).await? {
            current.insert(row.try_get("id")?, decimal_col(&row, "cost_usd")?);
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "INSERT INTO {table} (id, {time_col}, organization_id, project_id, user_id, api_key_id,
                provider, model, requests, input_tokens, output_tokens, cost_usd) "
        ));
        q.push_values(chunk, |mut b, d| {
            let id = d.id.to_string();
            let total = current.get(&id).copied().unwrap_or(Decimal::ZERO) + d.cost_usd;
            b.push_bind(id)
                .push_bind(ts(d.start))
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

/// Adds a batch of new records to every rollup, in the caller's transaction.
pub(super) async fn add_to_rollups(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[&CostRecord],
) -> Result<(), StoreError> {
    for grain in Grain::ALL {
        add_to_rollup(tx, grain, &deltas(rows, grain)).await?;
    }
    Ok(())
}

impl SqliteStore {
    /// Fills each rollup from the records when the database had records before it existed
    /// (its state row says so); returns how many records were read.
    pub async fn backfill_rollups(&self) -> Result<u64, StoreError> {
        let mut read = 0;
        for grain in Grain::ALL {
            read += self.backfill(grain).await?;
        }
        Ok(read)
    }

    /// One rollup's fill, in one transaction, which takes the write lock before it looks:
    /// two processes opening the database at once (a server and the CLI) fill it once, and
    /// a fill that stopped half-way left nothing.
    async fn backfill(&self, grain: Grain) -> Result<u64, StoreError> {
        let (table, state) = (grain.table(), grain.state_table());
        let check = format!("SELECT filled FROM {state} WHERE id = 1");
        let filled: i64 = sqlx::query_scalar(&check).fetch_one(&self.pool).await?;
        if filled == 1 {
            return Ok(0);
        }
        let mut tx = self.ledger.begin().await?;
        sqlx::query(&format!("UPDATE {state} SET filled = filled WHERE id = 1")).execute(&mut *tx).await?;
        let filled: i64 = sqlx::query_scalar(&check).fetch_one(&mut *tx).await?;
        if filled == 1 {
            return Ok(0);
        }
        sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
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
            add_to_rollup(&mut tx, grain, &deltas(&refs, grain)).await?;
            read += records.len() as u64;
        }
        sqlx::query(&format!("UPDATE {state} SET filled = 1 WHERE id = 1")).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(read)
    }
}
