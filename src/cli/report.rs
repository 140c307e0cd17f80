//! The report commands: `tollgate spend` (with each budget's use) and `tollgate pricing`.

use rust_decimal::Decimal;
use serde_json::{json, Map, Value};

use super::entities::{budget_statuses, print_json};
use super::exit::NotFound;
use super::{Output, SpendArgs};
use crate::budget::BudgetStatus;
use crate::config::Config;
use crate::pricing::{ModelPrice, Prices, Resolved};
use crate::store::{self, Store};

/// `tollgate spend`: the spend table and the budget table under it, or with `--json` what
/// `GET /v1/spend` returns.
pub(super) async fn spend(store: &Store, args: SpendArgs) -> anyhow::Result<()> {
    let filter = store::RecordFilter {
        organization_id: args.organization_id,
        project_id: args.project_id,
        user_id: args.user_id,
        from: args.from,
        to: args.to,
        ..Default::default()
    };
    let rows = store.spend(&filter, args.group_by).await?;
    let wanted: Vec<_> =
        [filter.organization_id, filter.project_id, filter.user_id].into_iter().flatten().collect();
    let budgets = budget_statuses(store, &wanted).await?;
    if args.output.json {
        return print_json(&json!({"data": rows, "from": filter.from, "to": filter.to, "budgets": budgets}));
    }
    out!(
        "{:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
        heading(args.group_by),
        "REQUESTS",
        "INPUT",
        "OUTPUT",
        "COST_USD"
    )?;
    let mut total = Decimal::ZERO;
    for r in &rows {
        total += r.cost_usd;
        let group = r.group.as_deref().unwrap_or("(none)");
        out!(
            "{group:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.cost_usd
        )?;
    }
    out!(
        "{:<40}  {:>9}  {:>12}  {:>12}  {:>14}",
        "TOTAL",
        rows.iter().map(|r| r.requests).sum::<u64>(),
        "",
        "",
        total.normalize()
    )?;
    if !budgets.is_empty() {
        out!("")?;
        print_budget_use(&budgets)?;
    }
    Ok(())
}

fn heading(group_by: store::GroupBy) -> &'static str {
    use store::GroupBy::*;
    match group_by {
        Organization => "ORGANIZATION",
        Project => "PROJECT",
        User => "USER",
        Key => "KEY",
        Model => "MODEL",
        Provider => "PROVIDER",
        Day => "DAY",
    }
}

/// `tollgate pricing`: what a model name resolves to; not found when nothing prices it.
pub(super) fn pricing(config: &Config, provider: &str, model: &str, out: Output) -> anyhow::Result<()> {
    let Some(resolved) = config.prices.resolve(provider, model) else {
        return Err(NotFound(format!(
            "no price for model '{model}' (provider {provider}; unknown_model = {})",
            format!("{:?}", config.unknown_model).to_lowercase()
        ))
        .into());
    };
    if out.json {
        return print_json(&pricing_json(model, &resolved));
    }
    Ok(out!("{}", pricing_report(model, &resolved).trim_end())?)
}

/// A resolved entry in the price file's own field names (decimal strings), with the name
/// asked for and how it matched.
fn pricing_json(model: &str, resolved: &Resolved<'_>) -> Value {
    let p: &ModelPrice = resolved.price;
    let mut entry = Map::new();
    entry.insert("model".into(), json!(model));
    entry.insert("name".into(), json!(p.name));
    entry.insert("matched_by".into(), json!(format!("{:?}", resolved.matched_by).to_lowercase()));
    entry.insert("provider".into(), json!(p.provider));
    entry.insert("vendor".into(), json!(p.vendor));
    rates_into(&mut entry, &p.base);
    if let Some((threshold, lc)) = &p.long_context {
        entry.insert("long_context".into(), long_context_json(*threshold, lc));
    }
    let mut tiers = Map::new();
    for (name, tier) in &p.service_tiers {
        let mut t = Map::new();
        rates_into(&mut t, &tier.rates);
        if let Some((threshold, lc)) = &tier.long_context {
            t.insert("long_context".into(), long_context_json(*threshold, lc));
        }
        tiers.insert(name.clone(), Value::Object(t));
    }
    entry.insert("service_tiers".into(), Value::Object(tiers));
    let aliases: Map<String, Value> = resolved
        .tier_aliases
        .iter()
        .filter(|(alias, target)| {
            p.service_tiers.contains_key(*target) && !p.service_tiers.contains_key(*alias)
        })
        .map(|(alias, target)| (alias.clone(), json!(target)))
        .collect();
    entry.insert("service_tier_aliases".into(), Value::Object(aliases));
    entry.insert("web_search_per_1k".into(), json!(p.web_search_per_1k.map(|d| d.to_string())));
    entry.insert("web_fetch_per_1k".into(), json!(p.web_fetch_per_1k.map(|d| d.to_string())));
    let geo: Map<String, Value> =
        p.inference_geo.iter().map(|(g, f)| (g.clone(), json!(f.to_string()))).collect();
    entry.insert("inference_geo".into(), Value::Object(geo));
    for (field, value) in [
        ("source", &p.source),
        ("date", &p.date),
        ("confidence", &p.confidence),
        ("service_tiers_source", &p.service_tiers_source),
        ("server_tools_source", &p.server_tools_source),
        ("inference_geo_source", &p.inference_geo_source),
    ] {
        entry.insert(field.into(), json!(value));
    }
    Value::Object(entry)
}

/// The rate fields of a table; `null` where the file sets none (billed at another rate).
fn rates_into(map: &mut Map<String, Value>, rates: &Prices) {
    let s = |d: Option<Decimal>| json!(d.map(|d| d.to_string()));
    map.insert("input".into(), s(Some(rates.input)));
    map.insert("cached_input".into(), s(rates.cached_input));
    map.insert("cache_write".into(), s(rates.cache_write));
    map.insert("cache_write_1h".into(), s(rates.cache_write_1h));
    map.insert("output".into(), s(Some(rates.output)));
    map.insert("input_audio".into(), s(rates.input_audio));
    map.insert("output_audio".into(), s(rates.output_audio));
}

fn long_context_json(threshold: u64, rates: &Prices) -> Value {
    let mut map = Map::new();
    map.insert("threshold_input_tokens".into(), json!(threshold));
    rates_into(&mut map, rates);
    Value::Object(map)
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

/// The budget table (`tollgate budget list`, and under a spend report): who is close to
/// a limit, at a glance.
pub(super) fn print_budget_use(budgets: &[BudgetStatus]) -> std::io::Result<()> {
    out!(
        "{:<36}  {:<12}  {:<36}  {:<8}  {:<4}  {:>12}  {:>12}  {:>6}",
        "ID",
        "SCOPE",
        "SCOPE ID",
        "PERIOD",
        "KIND",
        "LIMIT_USD",
        "SPENT_USD",
        "USED"
    )?;
    for s in budgets {
        let b = &s.budget;
        // A limit of a few billionths of a cent makes the ratio overflow: show the most.
        let used = s
            .spent_usd
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|x| x.checked_div(b.limit_usd))
            .map_or(Decimal::MAX, |x| x.round_dp(1));
        out!(
            "{:<36}  {:<12}  {:<36}  {:<8}  {:<4}  {:>12}  {:>12}  {:>5}%",
            b.id,
            b.scope.as_str(),
            b.scope_id,
            b.period.as_str(),
            if b.hard { "hard" } else { "soft" },
            b.limit_usd,
            s.spent_usd,
            used
        )?;
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
