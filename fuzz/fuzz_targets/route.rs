//! Routing over any request target: `resolve` never panics, refuses every dot segment and
//! otherwise stays inside the provider; the upstream URI keeps the provider's scheme,
//! authority and base path; `take_param` removes exactly `key`; detecting the metered API never panics.
//! Input: [path] ? [query...].
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::proxy::route::{has_param, resolve, take_param, upstream_uri};
use tollgate::provider::ProviderKind;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = r#"
            [[providers]]
            name = "azure"
            kind = "openai"
            base_url = "https://x.openai.azure.com/openai/deployments/gpt4o/?api-version=2024-10-21"
            auth_header = "api-key"
        "#;
        Config::from_toml_with_env(text, &|_| None).expect("fuzz config")
    })
}

fn is_dot(segment: &str) -> bool {
    let s = segment.to_ascii_lowercase();
    matches!(s.as_str(), "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e.")
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    for kind in ProviderKind::ALL {
        let _ = kind.api(path);
    }
    if let Some(q) = query {
        let (value, rest) = take_param(q, "key");
        assert_eq!(has_param(q, "key"), value.is_some());
        assert!(!rest.as_deref().is_some_and(|r| has_param(r, "key")), "key left in the query");
        let kept: Vec<&str> = q.split('&').filter(|p| p.split('=').next() != Some("key")).collect();
        assert_eq!(rest.unwrap_or_default(), kept.join("&"), "other parameters changed");
    }
    let Ok(route) = resolve(config(), path) else { return };
    assert!(route.path.starts_with('/'));
    assert!(!path.split('/').any(is_dot), "a dot segment got through");
    assert!(path.ends_with(route.path) || route.path == "/", "the route path is not the target's");
    if let Ok(uri) = upstream_uri(route.provider, route.path, query) {
        assert_eq!(uri.scheme(), Some(&route.provider.scheme));
        assert_eq!(uri.authority(), Some(&route.provider.authority));
        assert!(uri.path().starts_with(&route.provider.base_path), "the URI left the base path");
    }
});
