//! Sending a request upstream over the pooled client ([`crate::upstream`]): the
//! first-byte timeout, and the mapping of transport failures to 502/504.

use std::error::Error as StdError;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::upstream::UpstreamClient;

/// A request the upstream did not answer.
#[derive(Debug)]
pub struct Unanswered {
    /// What the client is told.
    pub error: ProxyError,
    /// The request left tollgate (a timeout or a reset after the connection was made):
    /// the provider may bill it. Only a failure to connect is certainly free.
    pub maybe_billed: bool,
}

/// Sends the request; the future resolves when the response head arrives.
pub async fn send(
    client: &UpstreamClient,
    request: Request<ProxyBody>,
    first_byte_timeout: Duration,
    max_request_bytes: u64,
) -> Result<Response<Incoming>, Unanswered> {
    match tokio::time::timeout(first_byte_timeout, client.request(request)).await {
        Err(_) => Err(Unanswered {
            error: ProxyError::UpstreamTimeout(format!(
                "no response within {} ms",
                first_byte_timeout.as_millis()
            )),
            maybe_billed: true,
        }),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(classify(&e, max_request_bytes)),
    }
}

/// Maps a client error to what the caller is told, walking its causes.
fn classify(error: &hyper_util::client::legacy::Error, max_request_bytes: u64) -> Unanswered {
    let (error, maybe_billed) = classify_error(error, max_request_bytes);
    Unanswered { error, maybe_billed }
}

fn classify_error(error: &hyper_util::client::legacy::Error, max_request_bytes: u64) -> (ProxyError, bool) {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    let mut timed_out = false;
    let mut detail = String::from("connection failed");
    while let Some(e) = source {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            return (ProxyError::TooLarge(max_request_bytes), false);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
            detail = io.kind().to_string();
        }
        source = e.source();
    }
    if error.is_connect() {
        let error = if timed_out {
            ProxyError::UpstreamTimeout("connect timed out".into())
        } else {
            ProxyError::UpstreamUnavailable(format!("connect: {detail}"))
        };
        (error, false)
    } else if timed_out {
        (ProxyError::UpstreamTimeout(detail), true)
    } else {
        (ProxyError::UpstreamUnavailable(detail), true)
    }
}
