//! The billed dimensions beyond tokens: tier tables over the base rates, tier aliases, audio
//! rates and their fallbacks, the geo factor (on tokens, never on tool fees), fees per 1,000
//! calls, and the admission upper bound built from them.

use super::*;

/// An entry from price-file text (`[[models]]` tables).
fn entry(toml_text: &str) -> ModelPrice {
    PriceList::from_toml(toml_text).unwrap().models()[0].clone()
}

/// 1,000 uncached input, 100 cached, 200 written (50 of them 1h), 300 output.
fn mixed() -> Usage {
    Usage {
        input_tokens: 1_300,
        cached_input_tokens: 100,
        cache_write_tokens: 200,
        cache_write_1h_tokens: 50,
        output_tokens: 300,
        ..Usage::default()
    }
}

fn in_tier(tier: &str, usage: Usage) -> Usage {
    Usage { service_tier: Some(tier.into()), ..usage }
}

const TIERED: &str = r#"
[[models]]
name = "m"
input = "2"
cached_input = "1"
cache_write = "4"
cache_write_1h = "8"
output = "10"
input_audio = "40"
[models.service_tiers.flex]
input = "1"
output = "5"
[models.service_tiers.priority]
input = "3"
cached_input = "1.5"
cache_write = "6"
cache_write_1h = "12"
output = "20"
output_audio = "90"
"#;

#[test]
fn a_reported_tier_selects_its_table_and_missing_keys_are_the_entry_s() {
    let m = entry(TIERED);
    // Base: 1000 * 2 + 100 * 1 + 150 * 4 + 50 * 8 + 300 * 10 = 6100.
    assert_eq!(m.cost(&mixed()), dec("0.0061"));
    // Flex lists input and output only: cache prices are the entry's.
    // 1000 * 1 + 100 * 1 + 150 * 4 + 50 * 8 + 300 * 5 = 3600.
    assert_eq!(m.cost(&in_tier("flex", mixed())), dec("0.0036"));
    // 1000 * 3 + 100 * 1.5 + 150 * 6 + 50 * 12 + 300 * 20 = 10650.
    assert_eq!(m.cost(&in_tier("priority", mixed())), dec("0.01065"));
    // A tier without a table of its own is billed at the entry's rates.
    for other in ["default", "auto", "standard", "scale", ""] {
        assert_eq!(m.cost(&in_tier(other, mixed())), dec("0.0061"), "{other}");
    }
    // Names are exact: the response's own spelling is what is looked up.
    assert_eq!(m.cost(&in_tier("Flex", mixed())), dec("0.0061"));
}

#[test]
fn tier_aliases_name_another_table_but_a_table_of_the_name_wins() {
    let list = shipped();
    let gpt5 = list.resolve("openai", "gpt-5-2025-08-07").unwrap();
    let u = Usage { input_tokens: 1_000_000, output_tokens: 100_000, ..Usage::default() };
    // Priority: 2.50 / 20.
    assert_eq!(gpt5.cost(&in_tier("fast", u.clone())), dec("4.5"));
    assert_eq!(gpt5.cost(&in_tier("priority", u.clone())), dec("4.5"));
    // Base 1.25 / 10: an entry priced on its own knows no aliases.
    assert_eq!(gpt5.price.cost(&in_tier("fast", u.clone())), dec("2.25"));
    // A model without a priority table: `fast` is the base rates.
    let nano = list.resolve("openai", "gpt-5-nano").unwrap();
    assert_eq!(nano.cost(&in_tier("fast", u.clone())), nano.cost(&u));

    let own = format!(
        "[service_tier_aliases]\nfast = \"priority\"\n{TIERED}[models.service_tiers.fast]\ninput = \"7\"\n"
    );
    let list = PriceList::from_toml(&own).unwrap();
    let m = list.resolve("openai", "m").unwrap();
    let input_only = Usage { input_tokens: 1_000, ..Usage::default() };
    assert_eq!(m.cost(&in_tier("fast", input_only)), dec("0.007"));
}

#[test]
fn audio_tokens_have_their_own_rates_else_the_text_rates() {
    let m = entry(TIERED);
    // 1,000 input of which 400 audio; 500 output of which 100 audio.
    let u = Usage {
        input_tokens: 1_000,
        output_tokens: 500,
        audio_input_tokens: Some(400),
        audio_output_tokens: Some(100),
        ..Usage::default()
    };
    // 600 * 2 + 400 * 40 + 400 * 10 + 100 * 10 (no output_audio: the output rate) = 22200.
    assert_eq!(m.cost(&u), dec("0.0222"));
    // Priority has its own output_audio (90); its input_audio is the entry's (40).
    // 600 * 3 + 400 * 40 + 400 * 20 + 100 * 90 = 34800.
    assert_eq!(m.cost(&in_tier("priority", u.clone())), dec("0.0348"));
    // No audio rates at all: audio costs what text costs.
    let plain = entry("[[models]]\nname = \"p\"\ninput = \"2\"\noutput = \"10\"\n");
    let text = Usage { audio_input_tokens: None, audio_output_tokens: None, ..u.clone() };
    assert_eq!(plain.cost(&u), plain.cost(&text));
    assert_eq!(plain.cost(&u), dec("0.007"));
    // Audio counts beyond the totals never underflow or bill more than the totals.
    let odd = Usage { audio_input_tokens: Some(5_000), audio_output_tokens: Some(900), ..u };
    // 1000 * 40 + 500 * 10
    assert_eq!(m.cost(&odd), dec("0.045"));
}

#[test]
fn the_geo_factor_multiplies_token_cost_but_never_the_tool_fees() {
    let list = shipped();
    let opus = list.resolve("anthropic", "claude-opus-4-6").unwrap();
    // 1000 * 5 + 200 * 0.5 + 100 * 6.25 + 100 * 10 + 500 * 25 = 19225 per 1M.
    let u = Usage {
        input_tokens: 1_400,
        cached_input_tokens: 200,
        cache_write_tokens: 200,
        cache_write_1h_tokens: 100,
        output_tokens: 500,
        ..Usage::default()
    };
    let global = Usage { inference_geo: Some("global".into()), ..u.clone() };
    assert_eq!(opus.cost(&global), dec("0.019225"));
    let us = Usage { inference_geo: Some("us".into()), ..u.clone() };
    assert_eq!(opus.cost(&us), dec("0.0211475"));
    for other in ["not_available", "eu", "US"] {
        let g = Usage { inference_geo: Some(other.into()), ..u.clone() };
        assert_eq!(opus.cost(&g), dec("0.019225"), "{other}");
    }
    // Three searches ($10 per 1,000) and two fetches ($0): 0.03 on top, not multiplied.
    let searched = Usage { web_search_requests: Some(3), web_fetch_requests: Some(2), ..us };
    assert_eq!(opus.cost(&searched), dec("0.0511475"));
    // A model without the factor (Opus 4.5) bills "us" at 1.
    let older = list.resolve("anthropic", "claude-opus-4-5").unwrap();
    assert_eq!(older.cost(&Usage { inference_geo: Some("us".into()), ..u.clone() }), older.cost(&u));
    // Batch and US stack: the batch table, then the factor. 19225 / 2 * 1.1.
    let batch_us = Usage { service_tier: Some("batch".into()), inference_geo: Some("us".into()), ..u };
    assert_eq!(opus.cost(&batch_us), dec("0.01057375"));
}

#[test]
fn tool_fees_are_per_thousand_calls_and_absent_fees_cost_nothing() {
    let m = entry("[[models]]\nname = \"t\"\ninput = \"0\"\noutput = \"0\"\nweb_search_per_1k = \"10\"\nweb_fetch_per_1k = \"2.5\"\n");
    let calls =
        |search, fetch| Usage { web_search_requests: search, web_fetch_requests: fetch, ..Usage::default() };
    assert_eq!(m.cost(&calls(Some(1), None)), dec("0.01"));
    assert_eq!(m.cost(&calls(Some(7), Some(4))), dec("0.08"));
    assert_eq!(m.cost(&calls(Some(0), Some(0))), Decimal::ZERO);
    assert!(m.cost(&calls(Some(u64::MAX), None)) > Decimal::ZERO);
    // gpt-4o-mini lists no web search fee (its per-call token block is not encoded).
    let mini = shipped().resolve("openai", "gpt-4o-mini").unwrap().price.clone();
    assert_eq!(mini.cost(&calls(Some(5), Some(5))), Decimal::ZERO);
}

#[test]
fn long_context_in_a_tier_is_the_tier_s_own_else_the_entry_s() {
    let list = shipped();
    let sol = list.resolve("openai", "gpt-5.6-sol").unwrap();
    let big =
        |tier: &str| in_tier(tier, Usage { input_tokens: 300_000, output_tokens: 1_000, ..Usage::default() });
    // Flex has its own long context: 300,000 * 5 + 1,000 * 22.5.
    assert_eq!(sol.cost(&big("flex")), dec("1.5225"));
    // Priority has none: above the threshold the entry's long context (10 / 45) applies.
    assert_eq!(sol.cost(&big("priority")), dec("3.045"));
    assert_eq!(sol.cost(&big("priority")), sol.cost(&big("default")));
    // At the threshold, the tier's own rates (10 / 60).
    let at = in_tier("priority", Usage { input_tokens: 272_000, output_tokens: 1_000, ..Usage::default() });
    assert_eq!(sol.cost(&at), dec("2.78"));
    // Anthropic batch carries a long context of its own (Sonnet 4.5: 3 / 11.25 above 200K).
    let sonnet = list.resolve("anthropic", "claude-sonnet-4-5").unwrap();
    let batch = in_tier("batch", Usage { input_tokens: 250_000, output_tokens: 2_000, ..Usage::default() });
    assert_eq!(sonnet.cost(&batch), dec("0.7725"));
}

#[test]
fn the_spec_example_entry_loads_from_the_config_shape() {
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
        name = "gpt-5.4"
        input = "2.50"
        cached_input = "0.25"
        output = "15.00"
        input_audio = "40.00"
        output_audio = "80.00"
        web_search_per_1k = "10.00"
        web_fetch_per_1k = "0"
        inference_geo = { us = "1.1" }
        [pricing.models.service_tiers.flex]
        input = "1.25"
        output = "7.50"
        [pricing.models.service_tiers.priority]
        input = "5.00"
        output = "30.00"
    "#;
    let config: Config = toml::from_str(text).unwrap();
    let m = config.pricing.models.into_iter().next().unwrap().validate("pricing.models[0]").unwrap();
    let flex = &m.service_tiers["flex"].rates;
    assert_eq!(
        (flex.input, flex.cached_input, flex.input_audio),
        (dec("1.25"), Some(dec("0.25")), Some(dec("40")))
    );
    assert_eq!((m.web_search_per_1k, m.web_fetch_per_1k), (Some(dec("10")), Some(Decimal::ZERO)));
    assert_eq!(m.inference_geo["us"], dec("1.1"));
}

fn ask(input: u64, output: u64) -> Ask<'static> {
    Ask { input_tokens: input, output_tokens: output, ..Ask::default() }
}

#[test]
fn the_upper_bound_covers_the_tier_the_response_may_report() {
    let list =
        PriceList::from_toml(&format!("[service_tier_aliases]\nfast = \"priority\"\n{TIERED}")).unwrap();
    let m = list.resolve("openai", "m").unwrap();
    let base = dec("0.003"); // 1000 * 2 + 100 * 10
    let priority = dec("0.005"); // 1000 * 3 + 100 * 20
    let with = |tier: Option<&'static str>| m.upper_bound(&Ask { service_tier: tier, ..ask(1_000, 100) });
    assert_eq!(with(Some("priority")), priority);
    assert_eq!(with(Some("fast")), priority);
    // Auto or nothing: the account may default to any tier, so the dearest.
    assert_eq!(with(None), priority);
    assert_eq!(with(Some("auto")), priority);
    // A cheaper tier asked for may still be served (and reported) at the base rates.
    assert_eq!(with(Some("flex")), base);
    assert_eq!(with(Some("default")), base);
    assert_eq!(with(Some("scale")), base);
}

#[test]
fn the_upper_bound_prices_audio_tools_and_geo_at_their_worst() {
    let m = entry(TIERED);
    let aliases = BTreeMap::new();
    let bound = |a: Ask<'_>| m.upper_bound(&Ask { service_tier: Some("default"), ..a }, &aliases);
    // Audio input at 40 (dearer than 2); audio output has no rate of its own: 10.
    assert_eq!(bound(Ask { audio_input: true, audio_output: true, ..ask(1_000, 100) }), dec("0.041"));
    // A priority request: its output_audio (90) is dearer than its output (20).
    let priority = Ask { service_tier: Some("priority"), audio_output: true, ..ask(1_000, 100) };
    assert_eq!(m.upper_bound(&priority, &aliases), dec("0.012"));
    // Audio rates cheaper than text never lower the bound.
    let cheap = entry("[[models]]\nname = \"c\"\ninput = \"2\"\noutput = \"10\"\ninput_audio = \"1\"\n");
    let a = Ask { audio_input: true, ..ask(1_000, 100) };
    assert_eq!(cheap.upper_bound(&a, &aliases), cheap.upper_bound(&ask(1_000, 100), &aliases));

    let list = shipped();
    let opus = list.resolve("anthropic", "claude-opus-4-6").unwrap();
    let tokens = dec("0.0075"); // 1000 * 5 + 100 * 25
    let geo = |g: Option<&'static str>| opus.upper_bound(&Ask { inference_geo: g, ..ask(1_000, 100) });
    assert_eq!(geo(Some("global")), tokens);
    assert_eq!(geo(Some("us")), tokens * dec("1.1"));
    // No geo asked: a workspace default may be US-only, so the largest factor.
    assert_eq!(geo(None), tokens * dec("1.1"));
    // Five searches allowed: 0.05 on top, outside the factor.
    let searching =
        Ask { inference_geo: Some("us"), web_search_calls: 5, web_fetch_calls: 9, ..ask(1_000, 100) };
    assert_eq!(opus.upper_bound(&searching), tokens * dec("1.1") + dec("0.05"));
}

#[test]
fn an_unpriceable_model_is_bounded_at_the_highest_rates_of_its_kind() {
    let list = shipped();
    let openai = |vendor: Option<&str>| !matches!(vendor, Some("anthropic" | "gemini"));
    // gpt-5.5 priority (12.5 / 75) has OpenAI's highest text rates.
    let plain = list.ceiling_bound(openai, &ask(1_000, 1_000)).unwrap();
    assert_eq!(plain, dec("0.0875"));
    // Audio input: gpt-4o-audio-preview-2024-10-01's 100.
    let audio = list.ceiling_bound(openai, &Ask { audio_input: true, ..ask(1_000, 1_000) }).unwrap();
    assert_eq!(audio, dec("0.175"));
    let searching = Ask { web_search_calls: 2, ..ask(1_000, 1_000) };
    assert_eq!(list.ceiling_bound(openai, &searching).unwrap(), dec("0.1075"));
    assert_eq!(list.ceiling_bound(|_| false, &ask(1, 1)), None);
    // Anthropic's: Opus 4.1 (15 / 75) with the US factor when no geo is asked.
    let anthropic = |vendor: Option<&str>| vendor == Some("anthropic");
    assert_eq!(list.ceiling_bound(anthropic, &ask(1_000, 1_000)).unwrap(), dec("0.099"));
}
