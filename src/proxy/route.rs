//! Routing: `/{provider}/{rest}` to that provider, anything else to the default provider,
//! and the upstream URI built from the provider's base URL (path prefix and query kept).

use http::Uri;

use crate::config::{Config, Provider};
use crate::error::ProxyError;

/// Where one request goes.
#[derive(Debug)]
pub struct Route<'c, 'p> {
    pub provider: &'c Provider,
    /// The path relative to the provider, e.g. `/v1/chat/completions`.
    pub path: &'p str,
}

/// Picks the provider for a request path; rejects paths that could escape the base path.
pub fn resolve<'c, 'p>(config: &'c Config, path: &'p str) -> Result<Route<'c, 'p>, ProxyError> {
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest("request target must be an absolute path".into()));
    }
    if path.split('/').any(is_dot_segment) {
        return Err(ProxyError::BadRequest("path must not contain '.' or '..' segments".into()));
    }
    let after_slash = &path[1..];
    let (first, rest) = match after_slash.find('/') {
        Some(i) => (&after_slash[..i], &after_slash[i..]),
        None => (after_slash, ""),
    };
    if let Some(provider) = config.provider(first) {
        let rest = if rest.is_empty() { "/" } else { rest };
        return Ok(Route { provider, path: rest });
    }
    let provider = config
        .provider(&config.default_provider)
        .ok_or_else(|| ProxyError::NotFound("no default provider".into()))?;
    Ok(Route { provider, path })
}

fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// The upstream URI: base URL + path, the client's query plus the base URL's own
/// parameters that the client did not send (Azure `api-version`).
pub fn upstream_uri(provider: &Provider, path: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let mut pq = String::with_capacity(provider.base_path.len() + path.len() + 64);
    pq.push_str(&provider.base_path);
    pq.push_str(path);
    let client_query = query.filter(|q| !q.is_empty());
    let mut sep = '?';
    if let Some(q) = client_query {
        pq.push('?');
        pq.push_str(q);
        sep = '&';
    }
    if let Some(base) = &provider.base_query {
        for param in base.split('&').filter(|p| !p.is_empty()) {
            let name = param.split('=').next().unwrap_or(param);
            if !client_query.is_some_and(|q| has_param(q, name)) {
                pq.push(sep);
                pq.push_str(param);
                sep = '&';
            }
        }
    }
    Uri::builder()
        .scheme(provider.scheme.clone())
        .authority(provider.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| ProxyError::BadRequest("request path cannot be forwarded".into()))
}

/// Whether a raw query string has a parameter named `name`.
pub fn has_param(query: &str, name: &str) -> bool {
    query.split('&').any(|p| p.split('=').next() == Some(name))
}

/// Removes every `name=...` parameter from a raw query, keeping the others byte for
/// byte; returns the last removed value and the remaining query.
pub fn take_param(query: &str, name: &str) -> (Option<String>, Option<String>) {
    let mut value = None;
    let mut kept: Vec<&str> = Vec::new();
    for p in query.split('&') {
        match p.split_once('=') {
            Some((n, v)) if n == name => value = Some(v.to_owned()),
            None if p == name => value = Some(String::new()),
            _ => kept.push(p),
        }
    }
    let rest = kept.join("&");
    (value, if rest.is_empty() { None } else { Some(rest) })
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = r#"
            [[providers]]
            name = "azure"
            kind = "openai"
            base_url = "https://x.openai.azure.com/openai/deployments/gpt4o/?api-version=2024-10-21"
            auth_header = "api-key"
            [[providers]]
            name = "groq"
            kind = "openai"
            base_url = "https://api.groq.com/openai"
        "#;
        Config::from_toml_with_env(text, &|_| None).unwrap()
    }

    #[test]
    fn named_provider_prefix_is_stripped() {
        let c = config();
        let r = resolve(&c, "/anthropic/v1/messages").unwrap();
        assert_eq!(r.provider.name, "anthropic");
        assert_eq!(r.path, "/v1/messages");
        let r = resolve(&c, "/groq/v1/chat/completions").unwrap();
        let uri = upstream_uri(r.provider, r.path, None).unwrap();
        assert_eq!(uri.to_string(), "https://api.groq.com/openai/v1/chat/completions");
    }

    #[test]
    fn unknown_prefix_goes_to_default_provider_unchanged() {
        let c = config();
        let r = resolve(&c, "/v1/chat/completions").unwrap();
        assert_eq!(r.provider.name, "openai");
        assert_eq!(r.path, "/v1/chat/completions");
        let uri = upstream_uri(r.provider, r.path, Some("a=1&b=%20x")).unwrap();
        assert_eq!(uri.to_string(), "https://api.openai.com/v1/chat/completions?a=1&b=%20x");
    }

    #[test]
    fn azure_base_path_and_api_version_are_kept() {
        let c = config();
        let r = resolve(&c, "/azure/chat/completions").unwrap();
        let uri = upstream_uri(r.provider, r.path, None).unwrap();
        assert_eq!(
            uri.to_string(),
            "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
        );
        // A client that sends its own api-version wins; nothing is duplicated.
        let uri = upstream_uri(r.provider, r.path, Some("api-version=2025-01-01")).unwrap();
        assert_eq!(uri.query(), Some("api-version=2025-01-01"));
    }

    #[test]
    fn dot_segments_are_refused() {
        let c = config();
        assert!(resolve(&c, "/azure/../../etc").is_err());
        assert!(resolve(&c, "/v1/%2E%2e/x").is_err());
        assert!(resolve(&c, "/v1/./x").is_err());
        assert!(resolve(&c, "*").is_err());
        assert!(resolve(&c, "/v1/a..b").is_ok());
    }

    #[test]
    fn take_param_keeps_other_bytes() {
        assert_eq!(take_param("alt=sse&key=abc", "key"), (Some("abc".into()), Some("alt=sse".into())));
        assert_eq!(take_param("key=abc", "key"), (Some("abc".into()), None));
        assert_eq!(take_param("x=%2F&keys=1", "key"), (None, Some("x=%2F&keys=1".into())));
    }
}
