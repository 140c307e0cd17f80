//! Header rules: hop-by-hop headers dropped both ways, the client's credential removed
//! (where each provider's clients put it is in [`crate::provider`]), `x-tollgate-*` never
//! forwarded, and the provider key put in its place.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::Provider;
use crate::provider::CREDENTIAL_HEADERS;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "http2-settings",
];

/// Prefix of tollgate's own request headers, never forwarded.
pub const TOLLGATE_PREFIX: &str = "x-tollgate-";

/// Drops hop-by-hop headers, including those named by `Connection` and any `Proxy-*`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy_headers: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("proxy-")).cloned().collect();
    for name in proxy_headers {
        headers.remove(name);
    }
}

/// Removes `x-tollgate-*` request headers.
pub fn strip_tollgate_headers(headers: &mut HeaderMap) {
    let ours: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with(TOLLGATE_PREFIX)).cloned().collect();
    for name in ours {
        headers.remove(name);
    }
}

/// Removes every credential header the client may have sent.
pub fn strip_credentials(headers: &mut HeaderMap) {
    for name in CREDENTIAL_HEADERS {
        headers.remove(name);
    }
}

/// Puts the provider's key in the header the provider expects.
pub fn set_provider_key(
    headers: &mut HeaderMap,
    provider: &Provider,
    key: &str,
) -> Result<(), http::header::InvalidHeaderValue> {
    let value = if provider.auth_header == header::AUTHORIZATION {
        HeaderValue::from_str(&format!("Bearer {key}"))
    } else {
        HeaderValue::from_str(key)
    };
    let mut value = value?;
    value.set_sensitive(true);
    headers.insert(provider.auth_header.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, X-Custom"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("trailer", HeaderValue::from_static("x"));
        h.insert("x-keep-me", HeaderValue::from_static("yes"));
        h.insert("openai-beta", HeaderValue::from_static("assistants=v2"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["x-keep-me", "openai-beta"]);
    }

    #[test]
    fn tollgate_headers_never_leave() {
        let mut h = HeaderMap::new();
        h.insert("x-tollgate-user", HeaderValue::from_static("u"));
        h.insert("x-tollgate-project", HeaderValue::from_static("p"));
        h.insert("x-other", HeaderValue::from_static("o"));
        strip_tollgate_headers(&mut h);
        assert_eq!(h.len(), 1);
    }
}
