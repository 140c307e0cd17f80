//! OpenAI stream usage injection: a chat stream requested without
//! `stream_options.include_usage` gets it added (so the provider reports usage), and
//! the client is shown the stream it asked for — the usage-only chunk removed and the
//! `"usage":null` the option adds to every other chunk taken out again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use memchr::memmem::Finder;
use pin_project_lite::pin_project;

/// Adds `"stream_options":{"include_usage":true}` to a JSON request body, leaving every
/// other byte as it was when the body has no `stream_options`; `None` if it cannot.
pub fn add_include_usage(body: &[u8]) -> Option<Bytes> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    match object.get("stream_options") {
        None => {
            let open = body.iter().position(|b| *b == b'{')?;
            let rest = &body[open + 1..];
            let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
            let mut out = Vec::with_capacity(body.len() + 40);
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            if !empty {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            Some(Bytes::from(out))
        }
        Some(serde_json::Value::Object(_)) | Some(serde_json::Value::Null) => {
            // Rare: options present without the flag. Re-serialize (key order may change).
            let mut object = object.clone();
            let options = object
                .entry("stream_options")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if options.is_null() {
                *options = serde_json::Value::Object(serde_json::Map::new());
            }
            options.as_object_mut()?.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&object).ok().map(Bytes::from)
        }
        Some(_) => None,
    }
}

/// Appends what the client sees of one complete event (bytes include its terminator) to
/// `out`. Only an event that could be the usage-only chunk (`"choices":[]`) is parsed;
/// the others are checked for the `,"usage":null` the option added with a byte search.
fn rewrite_event(event: &[u8], out: &mut Vec<u8>) {
    const USAGE_NULL: &[u8] = b",\"usage\":null";
    // Searchers built once: building one per event cost more than the search.
    static EMPTY_CHOICES: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"choices\":[]"));
    static USAGE_NULL_FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(USAGE_NULL));
    if EMPTY_CHOICES.find(event).is_some() && is_usage_only(event) {
        return;
    }
    match USAGE_NULL_FINDER.find(event) {
        Some(at) => {
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + USAGE_NULL.len()..]);
        }
        None => out.extend_from_slice(event),
    }
}

/// A `data:` event whose JSON has an empty `choices` and a non-null `usage`.
fn is_usage_only(event: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(event) else { return false };
    let Some(json) = text.trim_start().strip_prefix("data:").map(str::trim) else { return false };
    #[derive(serde::Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
        #[serde(default)]
        usage: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Chunk>(json) {
        Ok(c) => c.choices.is_some_and(|c| c.is_empty()) && c.usage.is_some(),
        Err(_) => false,
    }
}

/// Length of the first complete event in `buf` (through its blank line), if any.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = memchr::memchr2(b'\n', b'\r', &buf[i..]) {
        i += found;
        let line_end = match buf[i] {
            b'\r' if buf.get(i + 1) == Some(&b'\n') => i + 2,
            // A CR at the very end may be half of a CRLF: wait for more bytes.
            b'\r' if i + 1 == buf.len() => return None,
            _ => i + 1,
        };
        // A line end directly followed by another line end ends the event.
        match buf.get(line_end) {
            Some(b'\n') => return Some(line_end + 1),
            Some(b'\r') if buf.get(line_end + 1) == Some(&b'\n') => return Some(line_end + 2),
            Some(b'\r') if line_end + 1 < buf.len() => return Some(line_end + 1),
            _ => i = line_end,
        }
    }
    None
}

pin_project! {
    /// Passes an OpenAI chat stream through event by event, hiding what injection added.
    pub struct InjectedUsageFilter<B> {
        #[pin]
        inner: B,
        pending: BytesMut,
        ready: VecDeque<Bytes>,
        done: bool,
    }
}

impl<B> InjectedUsageFilter<B> {
    /// Wraps a response body of a request tollgate added `include_usage` to.
    pub fn new(inner: B) -> Self {
        InjectedUsageFilter { inner, pending: BytesMut::new(), ready: VecDeque::new(), done: false }
    }
}

impl<B> Body for InjectedUsageFilter<B>
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
        loop {
            if let Some(out) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => data,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    };
                    // Events are rewritten straight from the frame unless a partial event
                    // from the previous frame has to be joined first: one copy per byte.
                    let joined;
                    let mut rest: &[u8] = if this.pending.is_empty() {
                        &frame
                    } else {
                        this.pending.extend_from_slice(&frame);
                        joined = this.pending.split();
                        &joined
                    };
                    let mut out = Vec::with_capacity(rest.len());
                    while let Some(end) = event_end(rest) {
                        rewrite_event(&rest[..end], &mut out);
                        rest = &rest[end..];
                    }
                    this.pending.extend_from_slice(rest);
                    if !out.is_empty() {
                        this.ready.push_back(Bytes::from(out));
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    if !this.pending.is_empty() {
                        let rest = this.pending.split().freeze();
                        this.ready.push_back(rest);
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.ready.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use http_body_util::{BodyExt, StreamBody};

    #[test]
    fn include_usage_is_inserted_without_touching_other_bytes() {
        let body = br#"{ "model":"gpt-4o",  "stream":true, "messages":[]}"#;
        let out = add_include_usage(body).unwrap();
        assert_eq!(
            &out[..],
            br#"{"stream_options":{"include_usage":true}, "model":"gpt-4o",  "stream":true, "messages":[]}"#
        );
        let out =
            add_include_usage(br#"{"stream_options":{"include_obfuscation":false},"stream":true}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["include_obfuscation"], false);
        assert!(add_include_usage(b"[1]").is_none());
        assert!(add_include_usage(b"nope").is_none());
    }

    #[test]
    fn events_are_found_across_line_end_styles() {
        assert_eq!(event_end(b"data: a\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\nrest"), Some(11));
        assert_eq!(event_end(b"data: a\r\rrest"), Some(9));
        assert_eq!(event_end(b"data: a\r\n"), None);
        assert_eq!(event_end(b"data: a\r"), None);
        assert_eq!(event_end(b"data: a\n\r"), None);
    }

    #[test]
    fn usage_only_chunk_is_dropped_and_usage_null_removed() {
        let chunk =
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{}}],\"usage\":null,\"obfuscation\":\"x\"}\n\n";
        let rewrite = |event: &[u8]| {
            let mut out = Vec::new();
            rewrite_event(event, &mut out);
            out
        };
        assert_eq!(
            rewrite(chunk),
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{}}],\"obfuscation\":\"x\"}\n\n".to_vec()
        );
        let usage = b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n";
        assert_eq!(rewrite(usage), b"".to_vec());
        assert_eq!(rewrite(b"data: [DONE]\n\n"), b"data: [DONE]\n\n".to_vec());
    }

    /// Runs `frames` through the filter (every frame is ready at once).
    fn filtered(frames: Vec<Vec<u8>>) -> Vec<u8> {
        let frames =
            frames.into_iter().map(|f| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(f))));
        let body = InjectedUsageFilter::new(StreamBody::new(futures_util::stream::iter(frames)));
        let collected = body.collect().now_or_never().expect("ready").expect("no error");
        collected.to_bytes().to_vec()
    }

    #[test]
    fn every_split_of_an_injected_stream_gives_the_stream_the_client_asked_for() {
        for eol in ["\n", "\r\n", "\r"] {
            let event = |json: &str| format!("data: {json}{eol}{eol}");
            let upstream = [
                event(r#"{"id":"c","choices":[{"delta":{"content":"é"}}],"usage":null}"#),
                format!(": keep-alive{eol}{eol}"),
                event(r#"{"id":"c","choices":[{"delta":{}}],"usage":null}"#),
                event(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#),
                event("[DONE]"),
            ]
            .concat();
            let expected = [
                event(r#"{"id":"c","choices":[{"delta":{"content":"é"}}]}"#),
                format!(": keep-alive{eol}{eol}"),
                event(r#"{"id":"c","choices":[{"delta":{}}]}"#),
                event("[DONE]"),
            ]
            .concat();
            let bytes = upstream.as_bytes();
            assert_eq!(filtered(vec![bytes.to_vec()]), expected.as_bytes(), "{eol:?} whole");
            for at in 0..=bytes.len() {
                let got = filtered(vec![bytes[..at].to_vec(), bytes[at..].to_vec()]);
                assert_eq!(String::from_utf8_lossy(&got), expected, "{eol:?} split at {at}");
            }
            let single: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
            assert_eq!(filtered(single), expected.as_bytes(), "{eol:?} byte by byte");
        }
    }
}
