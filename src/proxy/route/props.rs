//! Properties of routing over any request target: resolving and building the upstream URI
//! never panic, never leave the provider's base path, and `take_param` removes exactly
//! the parameter named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    let text = r#"
        [[providers]]
        name = "azure"
        kind = "openai"
        base_url = "https://x.openai.azure.com/openai/deployments/gpt4o/?api-version=2024-10-21&x"
        auth_header = "api-key"
        [[providers]]
        name = "groq"
        kind = "openai"
        base_url = "https://api.groq.com/openai"
    "#;
    Config::from_toml_with_env(text, &|_| None).unwrap()
});

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Request targets built from the segments that matter (provider names, dot segments in
/// every spelling) and from anything at all.
fn target() -> impl Strategy<Value = String> {
    let segment = select(
        &[
            "",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            ".%2E",
            "...",
            "a..b",
            "azure",
            "groq",
            "anthropic",
            "gemini",
            "v1",
            "chat",
            "completions",
            "%2f",
            "?",
            "#",
            "é",
            " ",
            "models",
            "g:generateContent",
            "*",
        ][..],
    );
    prop_oneof![
        3 => (any::<bool>(), vec(segment, 0..8)).prop_map(|(rooted, s)| {
            format!("{}{}", if rooted { "/" } else { "" }, s.join("/"))
        }),
        1 => any::<String>(),
    ]
}

fn is_dot(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase();
    matches!(s.as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e.")
}

/// A query as `(name, value)` parameters; a `None` value is a bare `name`.
fn params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    let name = select(&["key", "keys", "k", "", "alt", "api-version", "k\u{e9}y", "KEY"][..])
        .prop_map(str::to_owned);
    let value =
        prop::option::of(select(&["", "abc", "a=b", "%2F", "sse", "%26"][..]).prop_map(str::to_owned));
    vec((name, value), 0..8)
}

fn raw(params: &[(String, Option<String>)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}={v}"),
            None => n.clone(),
        })
        .collect();
    parts.join("&")
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn any_target_resolves_inside_its_provider_or_is_refused(path in target(), query in prop::option::of(target())) {
        let Ok(route) = resolve(&CONFIG, &path) else {
            return Ok(());
        };
        prop_assert!(route.path.starts_with('/'));
        prop_assert!(!path.split('/').any(is_dot), "a dot segment got through: {path}");
        let stripped = format!("/{}{}", route.provider.name, route.path);
        prop_assert!(
            route.path == path || stripped == path || (route.path == "/" && path == format!("/{}", route.provider.name)),
            "{path} -> {} {}", route.provider.name, route.path
        );
        if let Ok(uri) = upstream_uri(route.provider, route.path, query.as_deref()) {
            prop_assert_eq!(uri.scheme(), Some(&route.provider.scheme));
            prop_assert_eq!(uri.authority(), Some(&route.provider.authority));
            prop_assert!(uri.path().starts_with(&route.provider.base_path), "{uri} left {}", route.provider.base_path);
        }
    }

    #[test]
    fn take_param_removes_exactly_the_named_parameter(params in params(), name in select(&["key", "k", "KEY"][..])) {
        let query = raw(&params);
        let (value, rest) = take_param(&query, name);
        let named = |p: &&(String, Option<String>)| p.0 == name;
        let want_value = params.iter().rfind(named).map(|(_, v)| v.clone().unwrap_or_default());
        let others: Vec<_> = params.iter().filter(|p| !named(p)).cloned().collect();
        let want_rest = Some(raw(&others)).filter(|r| !r.is_empty());
        prop_assert_eq!(&value, &want_value);
        prop_assert_eq!(&rest, &want_rest);
        prop_assert_eq!(has_param(&query, name), value.is_some());
        prop_assert!(!rest.as_deref().is_some_and(|r| has_param(r, name)));
    }

    #[test]
    fn any_query_is_taken_apart_without_panicking(query in any::<String>(), name in any::<String>()) {
        let (value, rest) = take_param(&query, &name);
        prop_assert_eq!(has_param(&query, &name), value.is_some());
        prop_assert!(rest.map_or(0, |r| r.len()) <= query.len());
    }
}
