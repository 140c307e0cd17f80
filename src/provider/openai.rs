//! OpenAI, and every OpenAI-compatible API (Azure OpenAI, Groq, Mistral, DeepSeek,
//! OpenRouter, and the compatibility endpoints of Anthropic and Gemini): its metered
//! endpoints, its credentials, its error shape. Its usage is decoded in
//! `usage/openai.rs` (chat and legacy completions, Responses, embeddings).

use http::HeaderMap;

use super::{bearer, plain, Defaults};
use crate::usage::Api;

/// The built-in `openai` provider.
pub const DEFAULTS: Defaults = Defaults {
    name: "openai",
    base_url: "https://api.openai.com",
    key_var: "OPENAI_API_KEY",
    auth_header: "authorization",
};

/// The metered endpoint behind a path (query already cut off): recognised by its last
/// segments, so any base path (`/v1`, `/openai/deployments/{name}`, `/api/v1`) works.
pub fn detect(path: &str) -> Option<Api> {
    let mut segments = path.split('/').filter(|s| !s.is_empty()).rev();
    let last = segments.next()?;
    match (segments.next(), last) {
        // Azure's deployment name is user-chosen and may itself be "chat".
        (Some("chat"), "completions") if segments.next() != Some("deployments") => Some(Api::ChatCompletions),
        (_, "completions") => Some(Api::Completions),
        (_, "responses") => Some(Api::Responses),
        (_, "embeddings") => Some(Api::Embeddings),
        _ => None,
    }
}

/// The credential its SDKs send: `Authorization: Bearer`, or Azure's `api-key`.
pub fn client_credential(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| plain(headers, "api-key"))
}

/// Its error shape: `{"error": {"message", "type", "param", "code"}}`.
pub fn error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {"message": message, "type": code, "param": null, "code": code}
    })
}
