//! The accept loop shared by the proxy and admin listeners: optional rustls TLS, HTTP/1.1
//! and HTTP/2 (hyper-util auto), and graceful shutdown that lets in-flight streams finish.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::body::ProxyBody;

mod guard;

use guard::{Activity, Streams, Tracked, WriteDeadline};

/// The HTTP/2 connection preface: the bytes that tell an HTTP/2 client from HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a client connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Longest a client may take to send a request's head (TLS handshake, the bytes that
    /// tell HTTP/1 from HTTP/2, the HTTP/2 preface, HTTP/1 headers).
    pub head_timeout: Duration,
    /// Connections open at once; past it the listener stops accepting until one closes.
    pub max_connections: usize,
    /// Longest a client may take to send a metered request's body (tollgate reads it
    /// whole to know the model; past it: 408), and the longest pause within an
    /// unmetered one (streamed through; past it the upload is cut).
    pub body_timeout: Duration,
    /// Longest a write may wait for the client to take bytes (it stopped reading); past
    /// it the connection is closed and its requests settle.
    pub send_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub keepalive_timeout: Duration,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            head_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
        }
    }
}

/// Waits until the client has sent enough to tell HTTP/1 from HTTP/2 (the whole HTTP/2
/// preface, or a first byte that cannot start it), without consuming it. hyper reads
/// these bytes without a deadline, so a client that sends `PRI` and stalls would hold
/// the connection forever.
async fn first_bytes(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 24];
    loop {
        stream.readable().await?;
        match stream.peek(&mut buf).await? {
            0 => return Ok(()), // closed: hyper sees the end
            n if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] => return Ok(()),
            // Part of the preface: wait for more (peek returns at once while data waits).
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Why TLS for the listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("no private key found in {0}")]
    NoKey(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a TLS acceptor from PEM certificate chain and key files, offering h2 and http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsSetupError::Read { path: p.display().to_string(), source })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Read { path: cert.display().to_string(), source })?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsSetupError::Read { path: key.display().to_string(), source })?
        .ok_or_else(|| TlsSetupError::NoKey(key.display().to_string()))?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Runs `step` of a connection that has not sent a request yet (its first bytes, the TLS
/// handshake) within `head_timeout`; `None` when it failed, timed out or the listener is
/// shutting down (the connection is then dropped).
async fn before_head<T>(
    step: impl Future<Output = std::io::Result<T>>,
    head_timeout: Duration,
    mut closing: tokio::sync::watch::Receiver<bool>,
    name: &'static str,
    peer: std::net::SocketAddr,
) -> Option<T> {
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(head_timeout, step) => outcome,
        _ = closing.wait_for(|c| *c) => return None,
    };
    match outcome {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::debug!(listener = name, %peer, error = %e, "connection failed before a request");
            None
        }
        Err(_) => {
            tracing::debug!(listener = name, %peer, "no request head in time; closing");
            None
        }
    }
}

/// Serves connections from `listener` until `shutdown` resolves, then waits up to
/// `grace` for open connections (and their streams) to finish.
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ClientLimits,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let streams = Streams::default();
    let mut builder = auto::Builder::new(streams.clone());
    // hyper enforces its header read timeout only with a timer: slow-loris clients
    // cannot hold a connection open forever.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.head_timeout);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Tells every connection to finish what it serves and close (shutdown).
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    // Every connection task, so the ones still open after the grace period can be
    // cancelled (and their requests settled) before the ledger is closed.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // At the connection limit, stop accepting (new clients wait in the kernel's
        // queue) until an open connection ends.
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let service = {
            let (handler, activity) = (handler.clone(), Arc::clone(&activity));
            service_fn(move |req| {
                let handler = handler.clone();
                let in_flight = activity.begin();
                async move { Ok::<_, Infallible>(handler(req).await.map(|body| Tracked::new(body, in_flight))) }
            })
        };
        let builder = builder.clone();
        let closing = closing_rx.clone();
        let acceptor = tls.clone();
        connections.spawn(async move {
            let _permit = permit;
            let head_timeout = limits.head_timeout;
            // Until the first bytes (or the TLS handshake) are in, the connection serves
            // nothing: it has the head timeout, and gives up at shutdown.
            let Some(()) = before_head(first_bytes(&stream), head_timeout, closing.clone(), name, peer).await
            else {
                return;
            };
            let io = WriteDeadline::new(stream, limits.send_timeout);
            let served = match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    drive(conn, closing, &activity, limits).await
                }
                Some(acceptor) => {
                    let Some(tls_stream) =
                        before_head(acceptor.accept(io), head_timeout, closing.clone(), name, peer).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                    drive(conn, closing, &activity, limits).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(listener = name, %peer, error = %e, "connection ended with error");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    tracing::info!(listener = name, "stopped accepting; draining open connections");
    let drained =
        tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            grace_ms = grace.as_millis() as u64,
            open = connections.len(),
            "grace period over; cutting the connections still open"
        );
    }
    // Cancelling drops each connection's in-flight bodies (HTTP/2 streams run apart from
    // their connection), which settles their requests (recorded as cut short) while the
    // ledger is still running.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    streams.cut().await;
}

/// Serves one connection until it ends; closes it gracefully (HTTP/2: GOAWAY) at
/// shutdown or once it has had no request in flight for `keepalive`. An idle client that
/// does not finish the goodbye (HTTP/2 waits for its PING acknowledgement) is dropped
/// after another `keepalive`, and so is a connection with a response that has waited
/// longer than `send_timeout` for the client to take a frame (an HTTP/2 stream it stopped
/// reading: flow control holds it without blocking any write).
async fn drive<C: GracefulConnection>(
    conn: C,
    mut closing: tokio::sync::watch::Receiver<bool>,
    activity: &Activity,
    limits: ClientLimits,
) -> Result<(), C::Error> {
    tokio::pin!(conn);
    let (keepalive, send_timeout) = (limits.keepalive_timeout, limits.send_timeout);
    let mut stopping = false;
    let mut drop_at = None;
    loop {
        // Next look: the goodbye's end, else a check for a stalled reader every half send
        // timeout (a request may start at any time), or the idle deadline if sooner.
        let check = Instant::now() + send_timeout / 2;
        let deadline = match (drop_at, activity.idle_deadline(keepalive)) {
            (Some(at), _) => at,
            (None, Some(idle)) if !stopping => idle.min(check),
            _ => check,
        };
        tokio::select! {
            served = conn.as_mut() => return served,
            _ = closing.wait_for(|c| *c), if !stopping => {
                conn.as_mut().graceful_shutdown();
                stopping = true;
            }
            () = tokio::time::sleep_until(deadline) => {
                if drop_at.is_some() {
                    return Ok(());
                }
                if activity.longest_wait_on_client() >= send_timeout {
                    tracing::debug!("a response waited too long for the client to read it; closing the connection");
                    return Ok(());
                }
                if !stopping && activity.idle_deadline(keepalive).is_some_and(|d| d <= Instant::now()) {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                    drop_at = Some(Instant::now() + keepalive);
                }
            }
        }
    }
}
