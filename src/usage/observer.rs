//! The body wrapper that watches a response go by: every frame passes through unchanged
//! and at once, its bytes feed a [`Meter`], and the response settles exactly once — at
//! the end of the body, on an error, or when the client goes away (drop).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::decode::Decompressor;
use super::{Meter, Metered};

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every byte was passed on.
    Complete,
    /// The upstream body failed (reset, idle timeout).
    Failed,
    /// The body was dropped before its end (client gone, shutdown).
    Cancelled,
}

/// What was learned from one response body.
#[derive(Debug, Clone)]
pub struct Observation {
    pub metered: Metered,
    pub end: End,
    /// Body bytes passed on to the client (as sent, i.e. still compressed).
    pub bytes: u64,
}

/// Called exactly once with the observation.
pub type OnSettle = Box<dyn FnOnce(Observation) + Send + Sync + 'static>;

struct Watch {
    meter: Meter,
    decompressor: Option<Decompressor>,
    bytes: u64,
    on_settle: OnSettle,
}

impl Watch {
    fn feed(&mut self, data: &Bytes) {
        self.bytes += data.len() as u64;
        match &mut self.decompressor {
            Some(d) => {
                let meter = &mut self.meter;
                d.feed(data, &mut |plain| meter.feed(plain));
            }
            None => self.meter.feed_bytes(data),
        }
    }

    fn settle(self, end: End) {
        let Watch { mut meter, decompressor, bytes, on_settle } = self;
        if let Some(d) = decompressor {
            d.finish(&mut |plain| meter.feed(plain));
        }
        on_settle(Observation { metered: meter.finish(), end, bytes });
    }
}

pin_project! {
    /// Passes `inner` through while metering it.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        watch: Option<Watch>,
    }

    impl<B> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(watch) = this.project().watch.take() {
                watch.settle(End::Cancelled);
            }
        }
    }
}

impl<B> ObservedBody<B> {
    /// Wraps `inner`; `content_encoding` is the response's `Content-Encoding`, decoded
    /// for the meter only.
    pub fn new(inner: B, meter: Meter, content_encoding: Option<&str>, on_settle: OnSettle) -> Self {
        let decompressor = content_encoding.and_then(Decompressor::for_encoding);
        ObservedBody { inner, watch: Some(Watch { meter, decompressor, bytes: 0, on_settle }) }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        let end = match &polled {
            Some(Ok(frame)) => {
                if let (Some(data), Some(watch)) = (frame.data_ref(), this.watch.as_mut()) {
                    watch.feed(data);
                }
                // hyper stops polling a body that says it has ended, so settle now.
                this.inner.is_end_stream().then_some(End::Complete)
            }
            Some(Err(_)) => Some(End::Failed),
            None => Some(End::Complete),
        };
        if let Some(end) = end {
            if let Some(watch) = this.watch.take() {
                watch.settle(end);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
