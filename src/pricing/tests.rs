//! Tests for the price list: shipped entries, name resolution, overrides, costs against the
//! public corpus, long-context tiers, fallbacks and validation errors.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

use super::*;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn shipped() -> PriceList {
    PriceList::shipped().unwrap()
}

/// A minimal valid raw entry.
fn raw(name: &str, input: &str, output: &str) -> RawModelPrice {
    RawModelPrice { name: name.into(), input: input.into(), output: output.into(), ..Default::default() }
}

fn usage(input: u64, cached: u64, write: u64, write_1h: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: write,
        cache_write_1h_tokens: write_1h,
        output_tokens: output,
        ..Usage::default()
    }
}

#[test]
fn every_shipped_entry_parses_and_has_source_date_and_confidence() {
    let list = shipped();
    assert_eq!(list.models().len(), 41);
    for m in list.models() {
        assert!(m.source.as_deref().is_some_and(|s| !s.is_empty()), "{} has no source", m.name);
        let date = m.date.as_deref().unwrap_or("");
        assert!(date.len() >= 7 && date[..4].bytes().all(|b| b.is_ascii_digit()), "{} date {date:?}", m.name);
        assert!(matches!(m.confidence.as_deref(), Some("high" | "medium" | "low")), "{}", m.name);
        assert!(!m.aliases.iter().any(|a| a.contains('@')), "{}", m.name);
    }
}

#[test]
fn shipped_prices_are_the_facts_exactly() {
    let list = shipped();
    let get = |p: &str, m: &str| list.resolve(p, m).unwrap().price;
    let mini = get("openai", "gpt-4o-mini");
    assert_eq!(mini.base.cached_input, Some(dec("0.075")));
    assert_eq!(mini.base.cached_input.unwrap().to_string(), "0.075");
    let emb = get("openai", "text-embedding-3-small");
    assert_eq!((emb.base.input, emb.base.output, emb.base.cached_input), (dec("0.02"), Decimal::ZERO, None));
    let haiku = get("anthropic", "claude-haiku-4-5");
    assert_eq!(haiku.base.cache_write_1h, Some(dec("2")));
    let (threshold, tier) = get("openai", "gpt-5.4").long_context.clone().unwrap();
    assert_eq!((threshold, tier.input, tier.output), (272_000, dec("5"), dec("22.5")));

    // The billed dimensions beyond tokens.
    let gpt54 = get("openai", "gpt-5.4");
    let flex = &gpt54.service_tiers["flex"];
    assert_eq!(
        (flex.rates.input, flex.rates.cached_input, flex.rates.output),
        (dec("1.25"), Some(dec("0.13")), dec("7.5"))
    );
    assert_eq!(gpt54.service_tiers["priority"].rates.output, dec("30"));
    assert_eq!(gpt54.web_search_per_1k, Some(dec("10")));
    let sol_flex = &get("openai", "gpt-5.6-sol").service_tiers["flex"];
    assert_eq!(sol_flex.long_context.as_ref().map(|(t, p)| (*t, p.output)), Some((272_000, dec("22.5"))));
    let audio = get("openai", "gpt-4o-audio-preview-2025-06-03");
    assert_eq!((audio.base.input_audio, audio.base.output_audio), (Some(dec("40")), Some(dec("80"))));
    assert_eq!(get("openai", "gpt-4o-audio-preview-2024-10-01").base.input_audio, Some(dec("100")));
    assert_eq!(get("gemini", "gemini-2.5-flash").base.input_audio, Some(dec("1")));
    let opus = get("anthropic", "claude-opus-4-6");
    assert_eq!(opus.inference_geo.get("us"), Some(&dec("1.1")));
    assert_eq!((opus.web_search_per_1k, opus.web_fetch_per_1k), (Some(dec("10")), Some(Decimal::ZERO)));
    assert_eq!(opus.service_tiers["batch"].rates.cache_write_1h, Some(dec("5")));
    assert!(get("anthropic", "claude-opus-4-5").inference_geo.is_empty());
    for m in list.models() {
        let dims = [
            (!m.service_tiers.is_empty(), &m.service_tiers_source),
            (m.web_search_per_1k.is_some() || m.web_fetch_per_1k.is_some(), &m.server_tools_source),
            (!m.inference_geo.is_empty(), &m.inference_geo_source),
        ];
        for (present, source) in dims {
            assert_eq!(present, source.is_some(), "{}: a billed dimension without its source", m.name);
        }
    }
}

/// Expected resolution: entry name, its provider restriction, how it matched.
type Want = (&'static str, Option<&'static str>, Match);

#[test]
fn resolution_table() {
    use Match::*;
    let list = shipped();
    #[rustfmt::skip]
    let cases: &[(&str, &str, Option<Want>)] = &[
        ("openai", "gpt-4o", Some(("gpt-4o", None, Exact))),
        ("openai", "gpt-4o-2024-08-06", Some(("gpt-4o", None, Exact))),
        ("openai", "gpt-4o-2024-05-13", Some(("gpt-4o-2024-05-13", None, Exact))),
        ("anthropic", "claude-opus-4-5-20251101", Some(("claude-opus-4-5", None, Exact))),
        ("anthropic", "claude-3-5-haiku-latest", Some(("claude-3-5-haiku", None, Exact))),
        // Dated snapshots not listed as aliases, both styles, and -latest.
        ("openai", "gpt-4o-mini-2099-01-31", Some(("gpt-4o-mini", None, Snapshot))),
        ("openai", "gpt-5.4-2026-03-05", Some(("gpt-5.4", None, Snapshot))),
        ("anthropic", "claude-3-5-sonnet-20991231", Some(("claude-3-5-sonnet", None, Snapshot))),
        ("anthropic", "claude-sonnet-4-6-20260101", Some(("claude-sonnet-4-6", None, Snapshot))),
        ("anthropic", "claude-sonnet-4-5-latest", Some(("claude-sonnet-4-5", None, Snapshot))),
        // Longest listed prefix at a '-' boundary.
        ("openai", "gpt-4o-mini-realtime", Some(("gpt-4o-mini", None, Prefix))),
        ("openai", "gpt-4o-mini-realtime-preview-2024-12-17", Some(("gpt-4o-mini", None, Prefix))),
        ("openai", "gpt-4o-realtime", Some(("gpt-4o", None, Prefix))),
        ("openai", "gpt-4.1-nano-x", Some(("gpt-4.1-nano", None, Prefix))),
        ("gemini", "gemini-2.5-flash-lite-preview-06-17", Some(("gemini-2.5-flash-lite", None, Prefix))),
        ("gemini", "gemini-2.5-flash-preview-05-20", Some(("gemini-2.5-flash", None, Prefix))),
        // Not at a boundary, not listed, wrong case.
        ("openai", "gpt-4oX", None),
        ("openai", "gpt-4", None),
        ("openai", "gpt-4o-", Some(("gpt-4o", None, Prefix))),
        ("openai", "GPT-4O", None),
        ("groq", "llama-3.3-70b-versatile", None),
        ("openrouter", "anthropic/claude-sonnet-4.5", None),
        ("openai", "", None),
        // Provider-restricted entries: win for their provider, never apply to others.
        ("azure", "gpt-4o-2024-11-20", Some(("gpt-4o-2024-11-20", Some("azure"), Exact))),
        ("openai", "gpt-4o-2024-11-20", Some(("gpt-4o", None, Exact))),
        ("azure", "o4-mini", Some(("o4-mini", Some("azure"), Exact))),
        ("openai", "o4-mini", Some(("o4-mini", None, Exact))),
        ("azure", "o4-mini-2099-01-01", Some(("o4-mini", Some("azure"), Snapshot))),
        ("azure", "o4-mini-high", Some(("o4-mini", Some("azure"), Prefix))),
        ("azure", "gpt-4o-mini", Some(("gpt-4o-mini", None, Exact))),
        // An unrestricted alias is an exact match, which beats a restricted snapshot match.
        ("azure", "o4-mini-2025-04-16", Some(("o4-mini", None, Exact))),
    ];
    for (provider, model, want) in cases {
        let got = list
            .resolve(provider, model)
            .map(|r| (r.price.name.as_str(), r.price.provider.as_deref(), r.matched_by));
        assert_eq!(got, *want, "resolve({provider:?}, {model:?})");
    }
}

#[test]
fn snapshot_suffixes() {
    assert_eq!(strip_snapshot("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(strip_snapshot("claude-3-5-sonnet-20241022"), Some("claude-3-5-sonnet"));
    assert_eq!(strip_snapshot("claude-3-5-sonnet-latest"), Some("claude-3-5-sonnet"));
    assert_eq!(strip_snapshot("gemini-2.5-flash-preview-05-20"), None);
    assert_eq!(strip_snapshot("model-2024082"), None);
    assert_eq!(strip_snapshot("model-2024-8-06"), None);
    assert_eq!(strip_snapshot("2024-08-06"), None);
    assert_eq!(strip_snapshot("gpt-4o"), None);
}

#[test]
fn overrides_replace_and_add() {
    let cheap = raw("gpt-4o", "1", "2").validate("pricing.models[0]").unwrap();
    let azure = RawModelPrice { provider: Some("azure".into()), ..raw("gpt-4o", "3", "4") };
    let added = RawModelPrice { aliases: vec!["in-house-v1".into()], ..raw("in-house", "0.5", "0.5") };
    let pinned = raw("gpt-4o-2024-08-06", "7", "7");
    let overrides = vec![
        cheap,
        azure.validate("pricing.models[1]").unwrap(),
        added.validate("pricing.models[2]").unwrap(),
        pinned.validate("pricing.models[3]").unwrap(),
    ];
    let before = shipped().models().len();
    let list = shipped().with_overrides(overrides);
    assert_eq!(list.models().len(), before + 3);
    let input = |p: &str, m: &str| list.resolve(p, m).map(|r| r.price.base.input);
    assert_eq!(input("openai", "gpt-4o"), Some(dec("1")));
    // Replacing an entry replaces its aliases too: the shipped snapshot alias is gone.
    assert_eq!(list.resolve("openai", "gpt-4o-2024-11-20").unwrap().matched_by, Match::Snapshot);
    assert_eq!(input("azure", "gpt-4o"), Some(dec("3")));
    assert_eq!(input("azure", "gpt-4o-2024-11-20"), Some(dec("2.75")));
    assert_eq!(input("openai", "in-house-v1"), Some(dec("0.5")));
    assert_eq!(input("openai", "in-house-v2"), Some(dec("0.5")));
    assert_eq!(input("openai", "gpt-4o-2024-08-06"), Some(dec("7")));
    assert_eq!(input("openai", "gpt-4o-mini"), Some(dec("0.15")));
}

/// The text of a field in the corpus's pretty-printed (indent 2) JSON, e.g. `1.86e-05`.
fn json_field<'t>(text: &'t str, indent: usize, key: &str) -> Option<&'t str> {
    let prefix = format!("{}\"{key}\": ", " ".repeat(indent));
    let hits: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_end().trim_end_matches(','))
        .collect();
    assert!(hits.len() <= 1, "{key} appears {} times", hits.len());
    hits.first().copied().filter(|v| *v != "null")
}

fn json_decimal(text: &str) -> Decimal {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).unwrap()
    } else {
        Decimal::from_str_exact(text).unwrap()
    }
}

#[test]
fn costs_match_every_public_corpus_reference() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/corpus/public");
    let list = shipped();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.ends_with(".expected.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(reference) = json_field(&text, 2, "reference_cost_usd") else { continue };
        let tokens = |key: &str| json_field(&text, 2, key).unwrap().parse::<u64>().unwrap();
        let count = |key: &str| json_field(&text, 2, key).map(|v| v.parse::<u64>().unwrap());
        let name = |key: &str| json_field(&text, 2, key).map(|v| v.trim_matches('"').to_owned());
        let u = Usage {
            input_tokens: tokens("input_tokens"),
            cached_input_tokens: tokens("cached_input_tokens"),
            cache_write_tokens: tokens("cache_write_tokens"),
            cache_write_1h_tokens: json_field(&text, 4, "cache_write_1h_tokens")
                .map_or(0, |v| v.parse().unwrap()),
            output_tokens: tokens("output_tokens"),
            reasoning_tokens: tokens("reasoning_tokens"),
            audio_input_tokens: count("audio_input_tokens"),
            audio_output_tokens: count("audio_output_tokens"),
            web_search_requests: count("web_search_requests"),
            web_fetch_requests: count("web_fetch_requests"),
            service_tier: name("service_tier"),
            inference_geo: name("inference_geo"),
        };
        let key = json_field(&text, 2, "pricing_key").unwrap().trim_matches('"');
        let (restriction, name) = match key.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key),
        };
        let price = list.models().iter().find(|m| m.name == name && m.provider.as_deref() == restriction);
        let price = price.unwrap_or_else(|| panic!("{file}: no entry for {key}"));
        // The reported model resolves to the same entry (tollgate names Azure's provider "azure").
        let provider = json_field(&text, 2, "provider").unwrap().trim_matches('"');
        let provider = if provider == "azure_openai" { "azure" } else { provider };
        let model = json_field(&text, 2, "model").unwrap().trim_matches('"');
        let resolved = list.resolve(provider, model).unwrap_or_else(|| panic!("{file}: {model} unpriced"));
        assert_eq!(resolved.price, price, "{file}: {model}");

        let want = json_decimal(reference);
        let got = resolved.cost(&u);
        assert!((got - want).abs() <= dec("0.000000001"), "{file}: {got} != {want}");
        assert_eq!(got, want.normalize(), "{file}");
        checked.push(file);
    }
    assert_eq!(checked.len(), 21, "{checked:?}");
}

#[test]
fn long_context_tier_prices_the_whole_request() {
    let list = shipped();
    let gpt54 = list.resolve("openai", "gpt-5.4").unwrap().price;
    assert_eq!(gpt54.rates(None, 272_000), &gpt54.base);
    // At the threshold: base rates. 272,000 = 200,000 uncached + 72,000 cached.
    let at = usage(272_000, 72_000, 0, 0, 1_000);
    assert_eq!(gpt54.cost(&at), dec("0.533"));
    // One token over: every token at the long-context rates (5 / 0.5 / 22.5).
    let over = usage(272_001, 72_000, 0, 0, 1_000);
    assert_eq!(gpt54.cost(&over), dec("1.058505"));

    // Sonnet 4's tier lists no cache_write_1h: the base tier's 1h price (6) applies.
    let sonnet = list.resolve("anthropic", "claude-sonnet-4-20250514").unwrap().price;
    let big = usage(300_000, 100_000, 50_000, 10_000, 2_000);
    // 150,000 * 6 + 100,000 * 0.6 + 40,000 * 7.5 + 10,000 * 6 + 2,000 * 22.5 = 1,365,000
    assert_eq!(sonnet.cost(&big), dec("1.365"));
    // gpt-5.4 has no cache_write price in either tier: writes cost the long-context input price.
    let writes = usage(300_000, 0, 100_000, 0, 0);
    assert_eq!(gpt54.cost(&writes), dec("1.5"));
}

#[test]
fn missing_cache_prices_fall_back_to_input() {
    let m = raw("plain", "2", "8").validate("t").unwrap();
    // 1,000 uncached + 400 cached + 300 5m writes + 100 1h writes, all at 2; 500 output at 8.
    assert_eq!(m.cost(&usage(1_800, 400, 400, 100, 500)), dec("0.0076"));
    let with_5m =
        RawModelPrice { cache_write: Some("4".into()), ..raw("w", "2", "8") }.validate("t").unwrap();
    // The 1h price falls back to input (2), not to the 5m price (4).
    assert_eq!(with_5m.cost(&usage(100, 0, 100, 100, 0)), dec("0.0002"));
}

#[test]
fn cost_is_exact_and_saturates() {
    let list = shipped();
    let mini = list.resolve("openai", "gpt-4o-mini").unwrap().price;
    assert_eq!(mini.cost(&Usage::default()), Decimal::ZERO);
    assert_eq!(mini.cost(&usage(1, 0, 0, 0, 0)).to_string(), "0.00000015");
    // Inconsistent counts never underflow: cache reads beyond input, 1h writes beyond writes.
    assert_eq!(mini.cost(&usage(10, 20, 0, 0, 0)), dec("0.0000015"));
    let haiku = list.resolve("anthropic", "claude-haiku-4-5").unwrap().price;
    assert_eq!(haiku.cost(&usage(10, 0, 10, 50, 0)), dec("0.00002"));
    let huge = usage(u64::MAX, 0, 0, 0, u64::MAX);
    assert!(list.resolve("anthropic", "claude-opus-4-1").unwrap().price.cost(&huge) > Decimal::ZERO);
}

fn err_text(toml_text: &str) -> String {
    PriceList::from_toml(toml_text).unwrap_err().to_string()
}

#[test]
fn bad_entries_name_the_entry_and_field() {
    let ok = "[[models]]\nname = \"a\"\ninput = \"1\"\noutput = \"2\"\n";
    assert_eq!(PriceList::from_toml(ok).unwrap().models().len(), 1);
    let cases = [
        ("input = \"abc\"\noutput = \"2\"", "models[0] (a): `input` = \"abc\" is not a decimal number"),
        (
            "input = \"1\"\ncached_input = \"-0.5\"\noutput = \"2\"",
            "models[0] (a): `cached_input` = \"-0.5\" is negative",
        ),
        (
            "input = \"1\"\ncache_write_1h = \"1e-3\"\noutput = \"2\"",
            "`cache_write_1h` = \"1e-3\" is not a decimal",
        ),
        (
            "input = \"1\"\noutput = \"2\"\nlong_context = { threshold_input_tokens = 5, output = \"x\" }",
            "`long_context.output`",
        ),
        ("input = \"1\"\noutput = \"2\"\ncolour = \"red\"", "colour"),
        ("input = \"1\"\noutput = 2.5", "expected a string"),
        ("input = \"1\"\noutput = \"2\"\nlong_context = { output = \"1\" }", "threshold_input_tokens"),
        ("input = \"1\"\noutput = \"2\"\ninput_audio = \"-4\"", "models[0] (a): `input_audio` = \"-4\" is negative"),
        ("input = \"1\"\noutput = \"2\"\nweb_search_per_1k = \"ten\"", "`web_search_per_1k` = \"ten\""),
        ("input = \"1\"\noutput = \"2\"\ninference_geo = { us = \"x\" }", "`inference_geo.us` = \"x\""),
        ("input = \"1\"\noutput = \"2\"\ninference_geo = { us = 1.1 }", "expected a string"),
        (
            "input = \"1\"\noutput = \"2\"\n[models.service_tiers.flex]\noutput = \"1e2\"",
            "models[0] (a): `service_tiers.flex.output` = \"1e2\" is not a decimal number",
        ),
        (
            "input = \"1\"\noutput = \"2\"\n[models.service_tiers.flex]\nlong_context = { threshold_input_tokens = 9, cached_input = \"-1\" }",
            "`service_tiers.flex.long_context.cached_input` = \"-1\" is negative",
        ),
        ("input = \"1\"\noutput = \"2\"\n[models.service_tiers.flex]\ncolour = \"1\"", "colour"),
        ("input = \"1\"\noutput = \"2\"\n[models.service_tiers.flex]\nweb_search_per_1k = \"1\"", "web_search_per_1k"),
        ("output = \"2\"", "missing field `input`"),
    ];
    for (fields, want) in cases {
        let err = err_text(&format!("[[models]]\nname = \"a\"\n{fields}\n"));
        assert!(err.contains(want), "{fields}: {err}");
    }
    let dup = format!("{ok}{ok}");
    assert_eq!(err_text(&dup), "models[1] (a): `name` \"a\" is already listed by another entry");
    let alias = format!("{ok}[[models]]\nname = \"b\"\naliases = [\"a\"]\ninput = \"1\"\noutput = \"1\"\n");
    assert!(err_text(&alias).contains("models[1] (b): `aliases` \"a\""));
    let restricted =
        format!("{ok}[[models]]\nname = \"a\"\nprovider = \"azure\"\ninput = \"1\"\noutput = \"1\"\n");
    assert_eq!(PriceList::from_toml(&restricted).unwrap().models().len(), 2);
    let empty = raw("", "1", "1").validate("pricing.models[4]").unwrap_err();
    assert_eq!(empty.to_string(), "pricing.models[4]: `name` must not be empty");
    let blank = RawModelPrice { provider: Some(String::new()), ..raw("a", "1", "1") };
    assert!(blank.validate("p").unwrap_err().to_string().contains("`provider`"));
}

#[test]
fn config_entries_deserialize_with_the_same_shape() {
    #[derive(Deserialize)]
    struct Config {
        pricing: Pricing,
    }
    #[derive(Deserialize)]
    struct Pricing {
        models: Vec<RawModelPrice>,
    }
    let text = r#"
        [[pricing.models]]
        name = "gpt-4o"
        provider = "azure"
        input = "2.75"
        cached_input = "1.25"
        output = "11"
        long_context = { threshold_input_tokens = 128000, input = "5.5" }
        source = "our Azure contract"
        date = "2026-11-01"
    "#;
    let config: Config = toml::from_str(text).unwrap();
    let overrides: Vec<ModelPrice> = config
        .pricing
        .models
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.validate(&format!("pricing.models[{i}]")))
        .collect::<Result<_, _>>()
        .unwrap();
    let (threshold, tier) = overrides[0].long_context.clone().unwrap();
    assert_eq!(
        (threshold, tier.input, tier.cached_input, tier.output),
        (128_000, dec("5.5"), Some(dec("1.25")), dec("11"))
    );
    let list = shipped().with_overrides(overrides);
    assert_eq!(list.resolve("azure", "gpt-4o").unwrap().price.source.as_deref(), Some("our Azure contract"));
}

mod dimensions;
