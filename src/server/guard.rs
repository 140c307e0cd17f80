//! What keeps a client from holding a connection forever once it is served: a deadline
//! on writes the client does not take (it stopped reading), requests in flight counted
//! per connection so an idle one can be closed, and an executor that keeps HTTP/2
//! streams where shutdown can reach them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::body::{BoxError, ProxyBody};
use crate::sync::lock;

/// A client connection whose writes fail once one has waited longer than `timeout` for
/// the client to take bytes: a client that stops reading a stream cannot hold it, its
/// upstream request and its budget reservation forever.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write waits on the client.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        WriteDeadline { inner, timeout, sleep: None }
    }

    /// A write is pending: start the clock if it is not running, fail once it runs out.
    fn stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("client took no bytes for {} ms", timeout.as_millis()),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(&mut self, outcome: io::Result<R>) -> Poll<io::Result<R>> {
        self.sleep = None;
        Poll::Ready(outcome)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(outcome) => this.progressed(outcome),
            Poll::Pending => this.stalled(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(outcome) => this.progressed(outcome),
            Poll::Pending => this.stalled(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(outcome) => this.progressed(outcome),
            Poll::Pending => this.stalled(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Requests in flight on one connection, since when it has had none, and how long each
/// response has waited for the client to take its last frame.
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when the last request ended.
    idle_since_ms: AtomicU64,
    /// Each response's hand-over clock (see [`Tracked`]); dead ones are pruned as new
    /// requests arrive.
    responses: Mutex<Vec<Weak<AtomicU64>>>,
}

impl Activity {
    /// A new connection, idle from now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            responses: Mutex::new(Vec::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a request until the returned guard (carried by its response body) drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let handed = Arc::new(AtomicU64::new(0));
        let mut responses = lock(&self.responses);
        if responses.len() >= 2 * in_flight + 8 {
            responses.retain(|r| r.strong_count() > 0);
        }
        responses.push(Arc::downgrade(&handed));
        InFlight { activity: Arc::clone(self), handed }
    }

    /// When the connection may be closed for idling `keepalive`, or `None` while a
    /// request is in flight.
    pub fn idle_deadline(&self, keepalive: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.started + since + keepalive)
    }

    /// The longest any response of this connection has been waiting for the client to
    /// take a frame it was handed (an HTTP/2 stream the client stopped reading: flow
    /// control stops it without any write blocking).
    pub fn longest_wait_on_client(&self) -> Duration {
        let now = self.now_ms();
        let responses = lock(&self.responses);
        let oldest = responses
            .iter()
            .filter_map(Weak::upgrade)
            .map(|h| h.load(Ordering::Acquire))
            .filter(|handed| *handed > 0)
            .min();
        oldest.map_or(Duration::ZERO, |handed| Duration::from_millis(now.saturating_sub(handed - 1)))
    }
}

/// One request in flight; dropped with its response body.
pub struct InFlight {
    activity: Arc<Activity>,
    /// 1 + the millisecond its body last handed a frame over that has not been taken
    /// yet (the next poll takes it); 0 while it waits on the upstream.
    handed: Arc<AtomicU64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.idle_since_ms.store(self.activity.now_ms(), Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// A response body that keeps its request counted in flight until it is done, and
    /// notes when it hands a frame over, so a client that stops taking them is seen.
    pub struct Tracked {
        #[pin]
        inner: ProxyBody,
        in_flight: InFlight,
    }
}

impl Tracked {
    /// `body`, counted until it drops.
    pub fn new(inner: ProxyBody, in_flight: InFlight) -> Tracked {
        Tracked { inner, in_flight }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let handed = match &polled {
            Poll::Ready(Some(Ok(_))) => this.in_flight.activity.now_ms() + 1,
            _ => 0,
        };
        this.in_flight.handed.store(handed, Ordering::Release);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The executor HTTP/2 runs each stream on: a set shutdown can cut, so no stream outlives
/// the grace period (and settles after the ledger is closed).
#[derive(Clone, Default)]
pub struct Streams(Arc<Mutex<JoinSet<()>>>);

impl Streams {
    fn set(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        lock(&self.0)
    }

    /// Cancels every stream still running and waits for them to be gone.
    pub async fn cut(&self) {
        let mut set = std::mem::take(&mut *self.set());
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut set = self.set();
        // Finished streams leave their results here until reaped.
        while set.try_join_next().is_some() {}
        set.spawn(fut);
    }
}
