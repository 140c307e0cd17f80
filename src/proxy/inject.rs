//! OpenAI stream usage injection: a chat stream requested without
//! `stream_options.include_usage` gets it added (so the provider reports usage), and
//! the client is shown the stream it asked for — the usage-only chunk removed and the
//! `"usage":null` the option adds to every other chunk taken out again. Events over
//! 1 MiB (never a usage chunk) pass through unchanged as they come.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use memchr::memmem::Finder;
use pin_project_lite::pin_project;
use serde_json::value::RawValue;

/// Adds `"stream_options":{"include_usage":true}` to a JSON request body, leaving every
/// other byte as it was (numbers, key order, spacing); `None` if it cannot.
pub fn add_include_usage(body: &[u8]) -> Option<Bytes> {
    // Values are kept as the text they were: parsed and written again, a number the client
    // sent (an integer past 64 bits, a float of many digits) could come out different.
    let fields: HashMap<String, &RawValue> = serde_json::from_slice(body).ok()?;
    let Some(options) = fields.get("stream_options") else {
        // The object's first byte that is not whitespace is its `{`.
        let open = body.iter().position(|b| *b == b'{')?;
        let comma = if fields.is_empty() { "" } else { "," };
        return Some(splice(
            body,
            open + 1..open + 1,
            &format!(r#""stream_options":{{"include_usage":true}}{comma}"#),
        ));
    };
    let (span, text) = (span_of(body, options), options.get());
    if text == "null" {
        return Some(splice(body, span, r#"{"include_usage":true}"#));
    }
    if !text.starts_with('{') {
        return None;
    }
    let inner: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    match inner.get("include_usage") {
        // A key given twice counts as its last: that is the one set.
        Some(flag) => Some(splice(body, span_of(body, flag), "true")),
        None => {
            let comma = if inner.is_empty() { "" } else { "," };
            Some(splice(body, span.start + 1..span.start + 1, &format!(r#""include_usage":true{comma}"#)))
        }
    }
}

/// Where a value parsed out of `body` (borrowed from it) sits in it.
fn span_of(body: &[u8], value: &RawValue) -> Range<usize> {
    let start = value.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + value.get().len()
}

/// `body` with the bytes in `range` replaced by `with`.
fn splice(body: &[u8], range: Range<usize>, with: &str) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + with.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(&body[range.end..]);
    Bytes::from(out)
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

/// Finds where events end as the bytes go by, each byte looked at once however the
/// stream is framed: an event ends at a line end (CRLF, LF or CR) right after another.
/// A CR is only known to be a line end of its own once the next byte is not an LF.
///
/// Not the metering framer ([`crate::usage::sse::Framer`]): that one decodes events
/// (fields, joined data lines) and may end a line at a CR at once, dropping an LF that
/// follows in the next slice. Here the exact bytes of each event, terminator included,
/// are passed on or dropped, so the LF of a CRLF split across frames must stay with its
/// event: waiting for the byte after a CR is what the framer cannot do without holding
/// the event back (and flushing it when the body ends). What they share is a `memchr2`.
#[derive(Debug, Default, Clone, Copy)]
struct Boundary {
    /// The event's bytes so far end with a whole line end.
    after_line_end: bool,
    /// The last byte was a CR that an LF may still join (`after_line_end` is as before it).
    cr: bool,
}

impl Boundary {
    /// Reads on through `bytes`, the continuation of the current event; returns how many of
    /// them complete it (the state then starts over), or `None` when it goes on past them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if !self.cr && !self.after_line_end {
                // Inside a line only a CR or an LF can change anything.
                i += memchr::memchr2(b'\n', b'\r', &bytes[i..])?;
            }
            let byte = bytes[i];
            if std::mem::take(&mut self.cr) {
                if byte == b'\n' {
                    if self.line_end() {
                        return Some(i + 1);
                    }
                    i += 1;
                    continue;
                }
                // A lone CR ended a line just before this byte.
                if self.line_end() {
                    return Some(i);
                }
            }
            match byte {
                b'\r' => self.cr = true,
                b'\n' => {
                    if self.line_end() {
                        return Some(i + 1);
                    }
                }
                _ => self.after_line_end = false,
            }
            i += 1;
        }
        None
    }

    /// Notes a line end; whether it ends the event (a blank line), starting over if so.
    fn line_end(&mut self) -> bool {
        if self.after_line_end {
            *self = Boundary::default();
            return true;
        }
        self.after_line_end = true;
        false
    }
}

/// Longest event held back to be rewritten. A usage chunk is a few hundred bytes; a
/// longer event passes through as it comes, unchanged, so an event without end can
/// neither hold up the stream nor grow without bound.
const MAX_HELD: usize = 1 << 20;

/// The stream cut into events as it goes by, each rewritten once it is complete.
#[derive(Debug, Default)]
struct Events {
    /// The bytes of an event begun in an earlier frame.
    pending: BytesMut,
    boundary: Boundary,
    /// The rest of an event over [`MAX_HELD`] is passed through as it comes.
    passing: bool,
}

impl Events {
    /// Appends what the client sees of the next frame to `out`. Events whole in the frame
    /// are rewritten where they are; only an unfinished one is copied, and each byte is
    /// scanned once, so how the stream is framed changes neither the cost nor the output.
    fn take(&mut self, mut rest: &[u8], out: &mut Vec<u8>) {
        while let Some(end) = self.boundary.scan(rest) {
            let (event, tail) = rest.split_at(end);
            if std::mem::take(&mut self.passing) {
                out.extend_from_slice(event);
            } else if self.pending.is_empty() && event.len() <= MAX_HELD {
                rewrite_event(event, out);
            } else if self.pending.len() + event.len() <= MAX_HELD {
                self.pending.extend_from_slice(event);
                rewrite_event(&self.pending, out);
                self.pending.clear();
            } else {
                out.extend_from_slice(&self.pending);
                out.extend_from_slice(event);
                self.pending.clear();
            }
            rest = tail;
        }
        if self.passing {
            out.extend_from_slice(rest);
        } else if self.pending.len() + rest.len() > MAX_HELD {
            out.extend_from_slice(&self.pending);
            out.extend_from_slice(rest);
            self.pending.clear();
            self.passing = true;
        } else {
            self.pending.extend_from_slice(rest);
        }
    }

    /// What is left when the body ends: an unfinished event, as it came.
    fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

pin_project! {
    /// Passes an OpenAI chat stream through event by event, hiding what injection added.
    pub struct InjectedUsageFilter<B> {
        #[pin]
        inner: B,
        events: Events,
        ready: VecDeque<Bytes>,
        done: bool,
    }
}

impl<B> InjectedUsageFilter<B> {
    /// Wraps a response body of a request tollgate added `include_usage` to.
    pub fn new(inner: B) -> Self {
        InjectedUsageFilter { inner, events: Events::default(), ready: VecDeque::new(), done: false }
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
                    let mut out = Vec::with_capacity(frame.len());
                    this.events.take(&frame, &mut out);
                    if !out.is_empty() {
                        this.ready.push_back(Bytes::from(out));
                    }
                }
                Poll::Ready(None) => {
                    *this.done = true;
                    this.ready.extend(this.events.finish());
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
    use futures_util::{FutureExt, StreamExt};
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

    fn event_end(buf: &[u8]) -> Option<usize> {
        Boundary::default().scan(buf)
    }

    #[test]
    fn options_already_there_get_the_flag_and_nothing_else_changes() {
        // Re-serialized, the 40-digit seed became a float and the temperature lost digits.
        let body = br#"{"seed": 1234567890123456789012345678901234567890, "temperature": 0.10000000000000000555, "stream_options": {"include_obfuscation": false}, "stream": true}"#;
        let out = add_include_usage(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"seed": 1234567890123456789012345678901234567890, "temperature": 0.10000000000000000555, "stream_options": {"include_usage":true,"include_obfuscation": false}, "stream": true}"#
        );
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"stream_options":null,"z":1e400}"#,
                r#"{"stream_options":{"include_usage":true},"z":1e400}"#,
            ),
            (br#"{"stream_options": { } }"#, r#"{"stream_options": {"include_usage":true } }"#),
            (
                br#"{"stream_options":{"include_usage":false,"include_usage":"no"}}"#,
                r#"{"stream_options":{"include_usage":false,"include_usage":true}}"#,
            ),
            (
                br#"{"a":[1],"stream_options":{"x":2}}"#,
                r#"{"a":[1],"stream_options":{"include_usage":true,"x":2}}"#,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                add_include_usage(body).map(|b| String::from_utf8(b.to_vec()).unwrap()).as_deref(),
                Some(want)
            );
        }
        assert!(add_include_usage(br#"{"stream_options":true}"#).is_none());
    }

    #[test]
    fn events_are_found_across_line_end_styles() {
        assert_eq!(event_end(b"data: a\n\nrest"), Some(9));
        assert_eq!(event_end(b"data: a\r\n\r\nrest"), Some(11));
        assert_eq!(event_end(b"data: a\r\rrest"), Some(9));
        assert_eq!(event_end(b"data: a\r\n"), None);
        assert_eq!(event_end(b"data: a\r"), None);
        assert_eq!(event_end(b"data: a\n\r"), None);
        // Where a frame ends changes nothing: a CR waits for the byte after it.
        let mut b = Boundary::default();
        assert_eq!(
            (b.scan(b"data: a\r"), b.scan(b""), b.scan(b"\n"), b.scan(b"\r\nnext")),
            (None, None, None, Some(2))
        );
        let mut b = Boundary::default();
        assert_eq!((b.scan(b"data: a\r"), b.scan(b"\r"), b.scan(b"x")), (None, None, Some(0)));
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
    fn a_large_event_in_many_frames_is_scanned_once() {
        // Rescanning and recopying the partial event on every frame was quadratic: this
        // took many seconds. Each byte is now looked at and copied once.
        let content = "x".repeat(MAX_HELD - 100);
        let event = format!(r#"data: {{"choices":[{{"delta":{{"content":"{content}"}}}}],"usage":null}}"#);
        let body = format!("{event}\n\ndata: [DONE]\n\n");
        let frames: Vec<Vec<u8>> = body.as_bytes().chunks(16).map(<[u8]>::to_vec).collect();
        let started = std::time::Instant::now();
        let got = filtered(frames);
        let elapsed = started.elapsed();
        assert!(got == body.replacen(r#","usage":null"#, "", 1).into_bytes(), "the event was not rewritten");
        assert!(elapsed < std::time::Duration::from_secs(2), "took {elapsed:?}");
    }

    #[test]
    fn an_event_over_the_limit_passes_unchanged_however_it_is_framed() {
        let big = format!(
            r#"data: {{"choices":[{{"delta":{{"content":"{}"}}}}],"usage":null}}"#,
            "x".repeat(MAX_HELD)
        );
        let small = r#"data: {"choices":[{"delta":{}}],"usage":null}"#;
        let body = format!("{big}\r\n\r\n{small}\n\n");
        let want = format!("{big}\r\n\r\n{}\n\n", small.replace(r#","usage":null"#, ""));
        for size in [body.len(), MAX_HELD - 1, MAX_HELD + 1, 4096, 7] {
            let got = filtered(body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect());
            assert!(got == want.as_bytes(), "frames of {size}");
        }
    }

    #[test]
    fn an_event_without_end_is_passed_on_not_held() {
        // The upstream is still sending; nothing in 4 MiB has ended an event.
        let frames = (0..64)
            .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'x'; 64 << 10]))));
        let upstream = futures_util::stream::iter(frames).chain(futures_util::stream::pending());
        let mut body = InjectedUsageFilter::new(StreamBody::new(upstream));
        let mut passed = 0;
        while let Some(Some(Ok(frame))) = body.frame().now_or_never() {
            passed += frame.into_data().map_or(0, |d| d.len());
        }
        assert!(passed >= (4 << 20) - MAX_HELD, "only {passed} bytes reached the client");
        let held = body.events.pending.len();
        assert!(held <= MAX_HELD, "{held} bytes held back");
        // The next event is rewritten again.
        let mut out = Vec::new();
        body.events.take(b"\n\ndata: {\"choices\":[],\"usage\":{}}\n\ndata: [DONE]\n\n", &mut out);
        assert_eq!(out, b"\n\ndata: [DONE]\n\n");
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
