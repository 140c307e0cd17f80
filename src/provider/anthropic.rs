//! Anthropic's Messages API: its metered endpoint, its credentials, its error shape, and
//! the price list vendor it serves. Its usage is decoded in `usage/anthropic.rs`.

use http::HeaderMap;

use super::{bearer, plain, Defaults};
use crate::usage::Api;

/// The built-in `anthropic` provider.
pub const DEFAULTS: Defaults = Defaults {
    name: "anthropic",
    base_url: "https://api.anthropic.com",
    key_var: "ANTHROPIC_API_KEY",
    auth_header: "x-api-key",
};

/// Price list vendors whose models it serves.
pub const VENDORS: [&str; 1] = ["anthropic"];

/// The metered endpoint behind a path (query already cut off): `.../messages` (not
/// `count_tokens` or `batches` under it).
pub fn detect(path: &str) -> Option<Api> {
    let last = path.split('/').rfind(|s| !s.is_empty())?;
    (last == "messages").then_some(Api::Messages)
}

/// The credential its SDKs send: `x-api-key`, or a bearer token.
pub fn client_credential(headers: &HeaderMap) -> Option<&str> {
    plain(headers, "x-api-key").or_else(|| bearer(headers))
}

/// Its error shape: `{"type": "error", "error": {"type", "message"}}`.
pub fn error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "error", "error": {"type": code, "message": message}
    })
}
