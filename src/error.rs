//! The errors tollgate itself answers on the proxy listener, rendered in the error
//! shape of the provider the route belongs to so SDKs surface them normally.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, ProxyBody};
use crate::provider::ProviderKind;

/// Response header carrying the request id (also the cost record's `request_id`): on
/// every answer, tollgate's own errors included.
pub const REQUEST_ID_HEADER: &str = "x-tollgate-request-id";

/// Everything that ends a proxied request before or instead of the upstream's answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown tollgate key")]
    InvalidKey,
    #[error("{0}")]
    Revoked(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("model '{0}' has no price and unknown_model = \"reject\"")]
    UnknownModel(String),
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("request body not received within {0} ms")]
    BodyTimeout(u128),
    #[error("provider '{0}' has no api_key configured")]
    ProviderKeyMissing(String),
    #[error("identity store unavailable")]
    StoreUnavailable,
    #[error("tollgate cannot record requests right now (its cost journal is full or failing); retry later")]
    Unrecordable,
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
}

impl ProxyError {
    /// The HTTP status tollgate answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::InvalidKey => StatusCode::UNAUTHORIZED,
            ProxyError::Revoked(_) => StatusCode::FORBIDDEN,
            ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BudgetExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            ProxyError::UnknownModel(_) => StatusCode::BAD_REQUEST,
            ProxyError::ProviderKeyMissing(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::StoreUnavailable | ProxyError::Unrecordable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The machine-readable code (SPEC §2 table).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::InvalidKey => "invalid_api_key",
            ProxyError::Revoked(_) => "key_revoked",
            ProxyError::NotFound(_) => "not_found",
            ProxyError::TooLarge(_) => "request_too_large",
            ProxyError::BodyTimeout(_) => "request_timeout",
            ProxyError::BudgetExceeded(_) => "budget_exceeded",
            ProxyError::UnknownModel(_) => "unknown_model",
            ProxyError::ProviderKeyMissing(_) => "provider_not_configured",
            ProxyError::StoreUnavailable | ProxyError::Unrecordable => "store_unavailable",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
        }
    }

    /// Renders the error as the given provider kind would.
    pub fn into_response(self, kind: ProviderKind, request_id: &str) -> Response<ProxyBody> {
        let status = self.status();
        let body = kind.error_body(status, self.code(), &self.to_string());
        let mut response = Response::new(full(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        response
    }
}
