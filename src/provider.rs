//! What tollgate knows of each provider's API, one file per provider: [`openai`],
//! [`anthropic`], [`gemini`]. Each says how its metered endpoints are recognised, where
//! its clients put their credential and where it wants its own key, the shape its errors
//! take, and what tollgate assumes of its built-in provider; this file only dispatches
//! on [`ProviderKind`].
//!
//! How a provider's usage is read out of its responses is not here but next to the
//! meter, in `usage/openai.rs`, `usage/anthropic.rs` and `usage/gemini.rs` (each provider
//! file links its decoder): a decoder is picked by the endpoint ([`Api`]), not the
//! provider kind (Anthropic and Gemini also answer on OpenAI-shaped endpoints), and the
//! decoders write into the meter's incremental state, which stays private to
//! [`crate::usage`]. Adding a provider means a file here, its decoder there, a fixture
//! folder and its tests.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use http::{header, HeaderMap, StatusCode};

use crate::usage::Api;

/// The kind of wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
}

/// What tollgate assumes of a provider kind when the config says nothing.
#[derive(Debug)]
pub struct Defaults {
    /// The config's `kind`, also the name of the built-in provider of that kind.
    pub name: &'static str,
    /// The built-in provider's base URL.
    pub base_url: &'static str,
    /// The environment variable the built-in provider's key is read from.
    pub key_var: &'static str,
    /// The header the provider expects its key in.
    pub auth_header: &'static str,
}

/// Every header a client may carry its credential in, for any provider kind (a test
/// checks it holds every header a provider's `client_credential` reads).
pub const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

impl ProviderKind {
    /// Every kind, in the order the built-in providers are listed.
    pub const ALL: [ProviderKind; 3] = [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::Gemini];

    /// The kind a config's `kind = "..."` names.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.defaults().name == s)
    }

    /// What tollgate assumes of this kind when the config says nothing.
    pub fn defaults(self) -> &'static Defaults {
        match self {
            ProviderKind::OpenAi => &openai::DEFAULTS,
            ProviderKind::Anthropic => &anthropic::DEFAULTS,
            ProviderKind::Gemini => &gemini::DEFAULTS,
        }
    }

    /// The header the provider expects its key in, when the config does not say.
    pub fn default_auth_header(self) -> &'static str {
        self.defaults().auth_header
    }

    /// The metered endpoint of this kind's own API that an upstream-relative `path` hits.
    pub fn native_api(self, path: &str) -> Option<Api> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        match self {
            ProviderKind::OpenAi => openai::detect(path),
            ProviderKind::Anthropic => anthropic::detect(path),
            ProviderKind::Gemini => gemini::detect(path),
        }
    }

    /// The metered endpoint a provider of this kind serves at `path`, if any: its own,
    /// or the OpenAI-compatible one Anthropic and Gemini also offer.
    pub fn api(self, path: &str) -> Option<Api> {
        self.native_api(path).or_else(|| match self {
            ProviderKind::Anthropic | ProviderKind::Gemini => ProviderKind::OpenAi.native_api(path),
            ProviderKind::OpenAi => None,
        })
    }

    /// The credential a client presented in the places its SDK puts it for this kind.
    /// `query_key` is the [`query_key`](Self::query_key) parameter, already taken out of
    /// the query.
    pub fn client_credential<'a>(
        self,
        headers: &'a HeaderMap,
        query_key: Option<&'a str>,
    ) -> Option<&'a str> {
        match self {
            ProviderKind::OpenAi => openai::client_credential(headers),
            ProviderKind::Anthropic => anthropic::client_credential(headers),
            ProviderKind::Gemini => gemini::client_credential(headers, query_key),
        }
    }

    /// The query parameter this kind's clients may put their key in (never forwarded).
    pub fn query_key(self) -> Option<&'static str> {
        match self {
            ProviderKind::Gemini => Some(gemini::QUERY_KEY),
            ProviderKind::OpenAi | ProviderKind::Anthropic => None,
        }
    }

    /// One of tollgate's own errors, serialized in this kind's error shape.
    pub fn error_body(self, status: StatusCode, code: &str, message: &str) -> Vec<u8> {
        let value = match self {
            ProviderKind::OpenAi => openai::error(code, message),
            ProviderKind::Anthropic => anthropic::error(code, message),
            ProviderKind::Gemini => gemini::error(status, code, message),
        };
        value.to_string().into_bytes()
    }

    /// The kind that serves a price list vendor's models: every vendor no provider file
    /// claims is reached through the OpenAI-compatible kind.
    pub fn of_vendor(vendor: Option<&str>) -> ProviderKind {
        match vendor {
            Some(v) if anthropic::VENDORS.contains(&v) => ProviderKind::Anthropic,
            Some(v) if gemini::VENDORS.contains(&v) => ProviderKind::Gemini,
            _ => ProviderKind::OpenAi,
        }
    }
}

/// An `Authorization: Bearer` token.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A header holding the credential as it is.
fn plain<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests;
