//! The report commands: `tollgate spend` (with each budget's use) and `tollgate pricing`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::SpendArgs;
use crate::config::Config;
use crate::pricing::{Prices, Resolved};
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
    match config.prices.resolve(provider, model) {
        Some(resolved) => print!("{}", pricing_report(model, &resolved)),
        None => println!("{model}: no price (unknown_model = {:?})", config.unknown_model),
    }
}

/// What `tollgate pricing` prints for a resolved model: every rate table, fee and factor
/// the entry has, and where each comes from.
fn pricing_report(model: &str, resolved: &Resolved<'_>) -> String {
    use std::fmt::Write;
    let p = resolved.price;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |text: String| {
        let _ = writeln!(out, "{text}");
    };
    line(format!(
        "{model} -> {} ({:?} match{})",
        p.name,
        resolved.matched_by,
        p.provider.as_deref().map(|x| format!(", provider {x}")).unwrap_or_default()
    ));
    line("USD per 1M tokens:".into());
    let show = |v: Option<Decimal>, fallback: &str| {
        v.map(|d| d.to_string()).unwrap_or_else(|| format!("= {fallback}"))
    };
    line(format!("  input           {}", p.base.input));
    line(format!("  cached input    {}", show(p.base.cached_input, "input")));
    line(format!("  cache write 5m  {}", show(p.base.cache_write, "input")));
    line(format!("  cache write 1h  {}", show(p.base.cache_write_1h, "input")));
    line(format!("  output          {}", p.base.output));
    line(format!("  audio input     {}", show(p.base.input_audio, "input")));
    line(format!("  audio output    {}", show(p.base.output_audio, "output")));
    let table = |rates: &Prices| {
        format!(
            "input {}, cached {}, write 5m {}, write 1h {}, output {}, audio in {}, audio out {}",
            rates.input,
            show(rates.cached_input, "input"),
            show(rates.cache_write, "input"),
            show(rates.cache_write_1h, "input"),
            rates.output,
            show(rates.input_audio, "input"),
            show(rates.output_audio, "output"),
        )
    };
    if let Some((threshold, lc)) = &p.long_context {
        line(format!("long context (input > {threshold} tokens): {}", table(lc)));
    }
    if !p.service_tiers.is_empty() {
        line("service tiers (as the response reports them; any other tier: the rates above):".into());
        for (name, tier) in &p.service_tiers {
            line(format!("  {name:<14}  {}", table(&tier.rates)));
            if let Some((threshold, lc)) = &tier.long_context {
                line(format!("  {:<14}  long context (input > {threshold} tokens): {}", "", table(lc)));
            }
        }
        for (alias, target) in resolved.tier_aliases {
            if p.service_tiers.contains_key(target) && !p.service_tiers.contains_key(alias) {
                line(format!("  {alias:<14}  = {target}"));
            }
        }
    }
    let fee = |v: Option<Decimal>| v.map(|d| d.to_string()).unwrap_or_else(|| "none".into());
    line(format!(
        "server tools (USD per 1,000 calls): web search {}, web fetch {}",
        fee(p.web_search_per_1k),
        fee(p.web_fetch_per_1k)
    ));
    if !p.inference_geo.is_empty() {
        let factors: Vec<String> = p.inference_geo.iter().map(|(geo, f)| format!("{geo} x{f}")).collect();
        line(format!("inference geo (factor on token cost, not on fees): {}", factors.join(", ")));
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    line(format!(
        "source: {} ({}), confidence {}",
        or_dash(&p.source),
        or_dash(&p.date),
        or_dash(&p.confidence)
    ));
    for (what, source) in [
        ("service tiers", &p.service_tiers_source),
        ("server tools", &p.server_tools_source),
        ("inference geo", &p.inference_geo_source),
    ] {
        if let Some(source) = source {
            line(format!("{what} source: {source}"));
        }
    }
    out
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pricing::PriceList;

    #[test]
    fn pricing_shows_tiers_audio_rates_fees_and_geo() {
        let list = PriceList::shipped().unwrap();
        let report =
            |provider: &str, model: &str| pricing_report(model, &list.resolve(provider, model).unwrap());
        let gpt = report("openai", "gpt-5.4-2026-03-05");
        for needle in [
            "gpt-5.4-2026-03-05 -> gpt-5.4 (Snapshot match)",
            "  flex            input 1.25, cached 0.13, write 5m = input, write 1h = input, output 7.5,",
            "  priority        input 5, cached 0.5,",
            "  fast            = priority",
            "server tools (USD per 1,000 calls): web search 10, web fetch none",
            "long context (input > 272000 tokens): input 5,",
            "service tiers source: https://developers.openai.com/api/docs/guides/flex-processing",
        ] {
            assert!(gpt.contains(needle), "{needle:?} not in:\n{gpt}");
        }
        assert!(!gpt.contains("inference geo"), "{gpt}");
        let audio = report("openai", "gpt-4o-audio-preview");
        assert!(audio.contains("  audio input     40\n  audio output    80\n"), "{audio}");
        assert!(!audio.contains("service tiers"), "{audio}");
        let opus = report("anthropic", "claude-opus-4-6");
        for needle in [
            "  audio input     = input",
            "  batch           input 2.5, cached 0.25, write 5m 3.125, write 1h 5, output 12.5,",
            "web search 10, web fetch 0",
            "inference geo (factor on token cost, not on fees): us x1.1",
            "inference geo source: https://platform.claude.com/docs/en/api/service-tiers",
        ] {
            assert!(opus.contains(needle), "{needle:?} not in:\n{opus}");
        }
    }
}
