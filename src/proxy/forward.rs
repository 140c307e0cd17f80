//! The upstream side: one pooled keep-alive client over rustls (HTTP/2 when the provider
//! offers it), the first-byte timeout, and the mapping of transport failures to 502/504.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::ProxyBody;
use crate::config::Config;
use crate::error::ProxyError;

/// The pooled upstream client.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("cannot read upstream CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builds the client: webpki and system roots plus the optional extra CA file.
pub fn build_client(config: &Config) -> Result<UpstreamClient, ClientSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A system store entry rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = &config.upstream_ca_file {
        let ca_err = |message: String| ClientSetupError::CaFile { path: path.display().to_string(), message };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_err(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https))
}

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
