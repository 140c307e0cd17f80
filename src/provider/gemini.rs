//! Google Gemini (Developer API and Vertex AI): its metered endpoints and the model named
//! in their path, its credentials (the `?key=` parameter included), its error shape, and
//! the price list vendors it serves. Its usage is decoded in `usage/gemini.rs`.

use http::{HeaderMap, StatusCode};

use super::{bearer, plain, Defaults};
use crate::usage::Api;

/// The built-in `gemini` provider.
pub const DEFAULTS: Defaults = Defaults {
    name: "gemini",
    base_url: "https://generativelanguage.googleapis.com",
    key_var: "GEMINI_API_KEY",
    auth_header: "x-goog-api-key",
};

/// The query parameter its clients may put their key in.
pub const QUERY_KEY: &str = "key";

/// Price list vendors whose models it serves.
pub const VENDORS: [&str; 2] = ["gemini", "google"];

/// The metered endpoint behind a path (query already cut off):
/// `models/{model}:{method}`.
pub fn detect(path: &str) -> Option<Api> {
    let last = path.split('/').rfind(|s| !s.is_empty())?;
    match last.rsplit_once(':')?.1 {
        "generateContent" => Some(Api::GenerateContent),
        "streamGenerateContent" => Some(Api::StreamGenerateContent),
        "embedContent" => Some(Api::EmbedContent),
        _ => None,
    }
}

/// The model a request names in its path: `.../models/{model}:generateContent`.
pub fn model_in_path(path: &str) -> Option<&str> {
    path.rsplit_once("/models/").and_then(|(_, rest)| rest.split_once(':')).map(|(m, _)| m)
}

/// The credential its SDKs send: `x-goog-api-key`, the `?key=` parameter (`query_key`,
/// already taken out of the query), or a bearer token (its OpenAI-compatible endpoint,
/// called with an OpenAI SDK).
pub fn client_credential<'a>(headers: &'a HeaderMap, query_key: Option<&'a str>) -> Option<&'a str> {
    plain(headers, "x-goog-api-key").or(query_key).or_else(|| bearer(headers))
}

/// Its error shape: `{"error": {"code": <HTTP status>, "message", "status"}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {"code": status.as_u16(), "message": format!("{code}: {message}"), "status": code}
    })
}
