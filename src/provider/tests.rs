//! What each provider file knows: endpoints, credentials, error shapes, vendors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::HeaderValue;

use super::*;

#[test]
fn detect_paths() {
    use Api::*;
    use ProviderKind as Kind;
    let cases = [
        (Kind::OpenAi, "/v1/chat/completions", Some(ChatCompletions)),
        (Kind::OpenAi, "/openai/deployments/x/chat/completions", Some(ChatCompletions)),
        (Kind::OpenAi, "/openai/deployments/chat/completions", Some(Completions)),
        (Kind::OpenAi, "/v1/completions", Some(Completions)),
        (Kind::OpenAi, "/v1/responses", Some(Responses)),
        (Kind::OpenAi, "/v1/responses/resp_1", None),
        (Kind::OpenAi, "/v1/embeddings", Some(Embeddings)),
        (Kind::OpenAi, "/api/v1/chat/completions?x=1", Some(ChatCompletions)),
        (Kind::OpenAi, "/v1/models", None),
        (Kind::OpenAi, "/v1/files", None),
        (Kind::Anthropic, "/v1/messages", Some(Messages)),
        (Kind::Anthropic, "/v1/messages/count_tokens", None),
        (Kind::Anthropic, "/v1/messages/batches", None),
        (Kind::Gemini, "/v1beta/models/gemini-2.5-flash:generateContent", Some(GenerateContent)),
        (Kind::Gemini, "/v1beta/models/gemini-2.5-flash:streamGenerateContent", Some(StreamGenerateContent)),
        (Kind::Gemini, "/v1beta/models/text-embedding-004:embedContent", Some(EmbedContent)),
        (Kind::Gemini, "/v1beta/models/gemini-2.5-flash:countTokens", None),
        (Kind::Gemini, "/v1beta/models", None),
        (Kind::Gemini, "/", None),
    ];
    for (kind, path, want) in cases {
        assert_eq!(kind.native_api(path), want, "{kind:?} {path}");
    }
}

#[test]
fn anthropic_and_gemini_also_serve_the_openai_endpoints() {
    for kind in [ProviderKind::Anthropic, ProviderKind::Gemini] {
        assert_eq!(kind.api("/v1/chat/completions"), Some(Api::ChatCompletions));
        assert_eq!(kind.api("/v1beta/openai/chat/completions"), Some(Api::ChatCompletions));
    }
    assert_eq!(ProviderKind::OpenAi.api("/v1/messages"), None);
    assert_eq!(ProviderKind::Anthropic.api("/v1/messages"), Some(Api::Messages));
}

#[test]
fn credentials_are_found_per_kind() {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer tg_abc"));
    assert_eq!(ProviderKind::OpenAi.client_credential(&h, None), Some("tg_abc"));
    assert_eq!(ProviderKind::Anthropic.client_credential(&h, None), Some("tg_abc"));
    assert_eq!(ProviderKind::Gemini.client_credential(&h, None), Some("tg_abc"));
    h.insert("x-api-key", HeaderValue::from_static("tg_x"));
    assert_eq!(ProviderKind::Anthropic.client_credential(&h, None), Some("tg_x"));
    assert_eq!(ProviderKind::Gemini.client_credential(&h, Some("tg_q")), Some("tg_q"));
    let mut azure = HeaderMap::new();
    azure.insert("api-key", HeaderValue::from_static("tg_az"));
    assert_eq!(ProviderKind::OpenAi.client_credential(&azure, None), Some("tg_az"));
}

#[test]
fn every_header_a_credential_is_read_from_is_stripped() {
    let candidates =
        ["authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie"];
    for kind in ProviderKind::ALL {
        for name in candidates {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("Bearer tg_abc"));
            let read = kind.client_credential(&h, None).is_some();
            assert!(!read || CREDENTIAL_HEADERS.contains(&name), "{kind:?} reads {name}, never stripped");
        }
        assert!(CREDENTIAL_HEADERS.contains(&kind.default_auth_header()), "{kind:?}");
    }
    for name in CREDENTIAL_HEADERS {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static("Bearer tg_abc"));
        let read_by_some = ProviderKind::ALL.iter().any(|k| k.client_credential(&h, None).is_some());
        assert!(read_by_some, "{name} is stripped but no provider reads it");
    }
}

#[test]
fn kinds_parse_from_their_names_and_vendors_map_to_kinds() {
    for kind in ProviderKind::ALL {
        assert_eq!(ProviderKind::parse(kind.defaults().name), Some(kind));
    }
    assert_eq!(ProviderKind::parse("OpenAI"), None);
    assert_eq!(ProviderKind::of_vendor(Some("google")), ProviderKind::Gemini);
    assert_eq!(ProviderKind::of_vendor(Some("anthropic")), ProviderKind::Anthropic);
    assert_eq!(ProviderKind::of_vendor(Some("mistral")), ProviderKind::OpenAi);
    assert_eq!(ProviderKind::of_vendor(None), ProviderKind::OpenAi);
}

#[test]
fn errors_take_each_provider_shape() {
    let body = |kind: ProviderKind| -> serde_json::Value {
        serde_json::from_slice(&kind.error_body(StatusCode::PAYMENT_REQUIRED, "budget_exceeded", "over"))
            .unwrap()
    };
    assert_eq!(
        body(ProviderKind::OpenAi),
        serde_json::json!({"error": {"message": "over", "type": "budget_exceeded", "param": null, "code": "budget_exceeded"}})
    );
    assert_eq!(
        body(ProviderKind::Anthropic),
        serde_json::json!({"type": "error", "error": {"type": "budget_exceeded", "message": "over"}})
    );
    assert_eq!(
        body(ProviderKind::Gemini),
        serde_json::json!({"error": {"code": 402, "message": "budget_exceeded: over", "status": "budget_exceeded"}})
    );
}

#[test]
fn gemini_names_the_model_in_the_path() {
    assert_eq!(
        gemini::model_in_path("/v1beta/models/gemini-2.5-pro:generateContent"),
        Some("gemini-2.5-pro")
    );
    assert_eq!(gemini::model_in_path("/v1beta/models"), None);
}
