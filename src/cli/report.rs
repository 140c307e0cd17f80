//! The report commands: `tollgate spend` (with each budget's use) and `tollgate pricing`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SpendArgs;
use crate::config::Config;
use crate::store::{self, PageRequest, Store};

fn parse_time(flag: &str, value: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    let Some(v) = value else { return Ok(None) };
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .with_context(|| format!("--{flag} must be an RFC 3339 time or YYYY-MM-DD"))?;
    Ok(Some(d.and_time(chrono::NaiveTime::MIN).and_utc()))
}

pub(super) async fn print_spend(store: &Store, args: SpendArgs) -> anyhow::Result<()> {
    let group_by = store::GroupBy::parse(&args.group_by).with_context(|| {
        format!(
            "--group-by '{}' is not organization, project, user, key, model, provider or day",
            args.group_by
        )
    })?;
    let filter = store::RecordFilter {
        organization_id: args.organization_id,
        project_id: args.project_id,
        user_id: args.user_id,
        from: parse_time("from", args.from.as_deref())?,
        to: parse_time("to", args.to.as_deref())?,
        ..Default::default()
    };
    let rows = store.spend(&filter, group_by).await?;
    println!(
        "{:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
        args.group_by.to_uppercase(),
        "REQUESTS",
        "INPUT",
        "OUTPUT",
        "COST_USD"
    );
    let mut total = rust_decimal::Decimal::ZERO;
    for r in &rows {
        total += r.cost_usd;
        let group = r.group.as_deref().unwrap_or("(none)");
        println!(
            "{group:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
            r.requests, r.input_tokens, r.output_tokens, r.cost_usd
        );
    }
    println!(
        "{:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
        "TOTAL",
        rows.iter().map(|r| r.requests).sum::<u64>(),
        "",
        "",
        total.normalize()
    );
    print_budget_use(store, &filter).await?;
    Ok(())
}

pub(super) fn print_pricing(config: &Config, provider: &str, model: &str) {
    let Some(resolved) = config.prices.resolve(provider, model) else {
        println!("{model}: no price (unknown_model = {:?})", config.unknown_model);
        return;
    };
    let p = resolved.price;
    let show =
        |v: Option<rust_decimal::Decimal>| v.map(|d| d.to_string()).unwrap_or_else(|| "= input".into());
    println!(
        "{model} -> {} ({:?} match{})",
        p.name,
        resolved.matched_by,
        p.provider.as_deref().map(|x| format!(", provider {x}")).unwrap_or_default()
    );
    println!("USD per 1M tokens:");
    println!("  input           {}", p.base.input);
    println!("  cached input    {}", show(p.base.cached_input));
    println!("  cache write 5m  {}", show(p.base.cache_write));
    println!("  cache write 1h  {}", show(p.base.cache_write_1h));
    println!("  output          {}", p.base.output);
    if let Some((threshold, lc)) = &p.long_context {
        println!(
            "long context (input > {threshold} tokens): input {} cached {} output {}",
            lc.input,
            show(lc.cached_input),
            lc.output
        );
    }
    println!("source: {} ({})", p.source.as_deref().unwrap_or("-"), p.date.as_deref().unwrap_or("-"));
}

/// The budget table under a spend report: who is close to a limit, at a glance.
pub(super) async fn print_budget_use(store: &Store, filter: &store::RecordFilter) -> anyhow::Result<()> {
    let wanted: Vec<Uuid> =
        [filter.organization_id, filter.project_id, filter.user_id].into_iter().flatten().collect();
    let budgets = store.list_budgets(None, &PageRequest { cursor: None, limit: 1000 }).await?.data;
    let budgets: Vec<_> =
        budgets.into_iter().filter(|b| wanted.is_empty() || wanted.contains(&b.scope_id)).collect();
    if budgets.is_empty() {
        return Ok(());
    }
    println!();
    println!(
        "{:<12}  {:<36}  {:<8}  {:<4}  {:>12}  {:>12}  {:>6}",
        "SCOPE", "SCOPE ID", "PERIOD", "KIND", "LIMIT_USD", "SPENT_USD", "USED"
    );
    let now = Utc::now();
    for b in budgets {
        let spent = store.window_spend(b.scope_id, b.period, b.period.start(now)).await?;
        let used = if b.limit_usd.is_zero() {
            rust_decimal::Decimal::ZERO
        } else {
            (spent * rust_decimal::Decimal::ONE_HUNDRED / b.limit_usd).round_dp(1)
        };
        println!(
            "{:<12}  {:<36}  {:<8}  {:<4}  {:>12}  {:>12}  {:>5}%",
            b.scope.as_str(),
            b.scope_id,
            b.period.as_str(),
            if b.hard { "hard" } else { "soft" },
            b.limit_usd,
            spent.normalize(),
            used
        );
    }
    Ok(())
}
