//! A fast, deterministic mock of the OpenAI, Anthropic and Gemini APIs for benchmarks.
//!
//! `cargo run --release --example mock_upstream -- --listen 127.0.0.1:9000 --chunks 20`
//!
//! - `POST …/chat/completions`: an OpenAI `chat.completion`, or with `"stream": true` the
//!   SSE `chat.completion.chunk` sequence (role chunk, `--chunks` content chunks, finish
//!   chunk, the `choices: []` usage chunk when `stream_options.include_usage`, `[DONE]`).
//! - `POST …/messages`: an Anthropic message, or its SSE event sequence.
//! - `POST …:generateContent` / `…:streamGenerateContent`: Gemini JSON, or SSE (as with
//!   `?alt=sse`) with running `usageMetadata` totals.
//! - anything else: `200 {"object":"list","data":[]}`.
//!
//! Token counts are deterministic: prompt = request body bytes / 4 (at least 1),
//! completion = `--chunks`. Models and ids are fixed. Stream events that do not depend on
//! the request are rendered once at start-up and shared; the rest of a response is
//! rendered into a single buffer. `--chunk-delay-ms` (or a request's
//! `x-mock-chunk-delay-ms` header) paces stream events; a non-streaming answer waits
//! `chunks × delay` before its head, as generation would.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(about = "Mock AI provider upstream for tollgate benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Content events per streamed answer (and completion tokens per answer).
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    /// Pause between two stream events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

const OPENAI_MODEL: &str = "gpt-4o-mini-2024-07-18";
const ANTHROPIC_MODEL: &str = "claude-sonnet-4-5-20250929";
const GEMINI_MODEL: &str = "gemini-2.5-flash";
const CREATED: u64 = 1_792_000_000;
const WORD: &str = " token";

/// Responses, or the request-independent parts of them, rendered once.
struct Templates {
    chunks: usize,
    delay: Duration,
    /// The start of every OpenAI chunk, up to `"choices":`.
    openai_head: String,
    /// OpenAI role, content and finish chunks: `[0]` plain, `[1]` with `"usage":null`.
    openai: [Vec<Bytes>; 2],
    /// Anthropic content_block_start, ping, deltas, content_block_stop.
    anthropic: Vec<Bytes>,
    /// The whole completion text, JSON-escaped (it needs no escaping).
    text: String,
}

impl Templates {
    fn new(chunks: usize, delay: Duration) -> Templates {
        let openai_head = format!(
            r#"{{"id":"chatcmpl-mockbench","object":"chat.completion.chunk","created":{CREATED},"model":"{OPENAI_MODEL}","system_fingerprint":"fp_mock","choices":"#
        );
        let openai = [false, true].map(|usage_null| {
            let tail = if usage_null { r#","usage":null}"# } else { "}" };
            let chunk = |choice: &str| Bytes::from(format!("data: {openai_head}[{choice}]{tail}\n\n"));
            let mut events = Vec::with_capacity(chunks + 2);
            events.push(chunk(
                r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
            ));
            let content = chunk(&format!(
                r#"{{"index":0,"delta":{{"content":"{WORD}"}},"logprobs":null,"finish_reason":null}}"#
            ));
            events.extend(std::iter::repeat_n(content, chunks));
            events.push(chunk(r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}"#));
            events
        });
        let mut anthropic = Vec::with_capacity(chunks + 3);
        anthropic.push(Bytes::from_static(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"));
        anthropic.push(Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n"));
        let delta = Bytes::from(format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{WORD}\"}}}}\n\n"
        ));
        anthropic.extend(std::iter::repeat_n(delta, chunks));
        anthropic.push(Bytes::from_static(
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        ));
        Templates { chunks, delay, openai_head, openai, anthropic, text: WORD.repeat(chunks) }
    }
}

/// The request fields the mock cares about; everything else is skipped unparsed.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatRequest {
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StreamOptions {
    include_usage: bool,
}

/// A response body made of ready frames, optionally paced.
struct Frames {
    frames: std::vec::IntoIter<Bytes>,
    remaining: u64,
    /// Exact length known up front (plain JSON): lets hyper send content-length.
    sized: bool,
    /// The pause between events and the timer armed after each one.
    pace: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    /// Whether a frame went out (the first one is never delayed).
    sent_first: bool,
}

impl Frames {
    fn new(frames: Vec<Bytes>, sized: bool, delay: Duration) -> Frames {
        let remaining = frames.iter().map(|b| b.len() as u64).sum();
        let pace = (!delay.is_zero() && !sized).then(|| (delay, Box::pin(tokio::time::sleep(delay))));
        Frames { frames: frames.into_iter(), remaining, sized, pace, sent_first: false }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.frames.len() == 0 {
            return Poll::Ready(None);
        }
        if let Some((delay, sleep)) = this.pace.as_mut() {
            if this.sent_first && sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            sleep.as_mut().reset(tokio::time::Instant::now() + *delay);
        }
        this.sent_first = true;
        let remaining = &mut this.remaining;
        Poll::Ready(this.frames.next().map(|b| {
            *remaining -= b.len() as u64;
            Ok(Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// Writes formatted text into a `BytesMut`; formatting into memory cannot fail.
fn put(buf: &mut BytesMut, args: std::fmt::Arguments<'_>) {
    let _ = buf.write_fmt(args);
}

/// Freezes `buf` and cuts it into frames at `ends` (exclusive end offsets).
fn split(buf: BytesMut, ends: &[usize]) -> Vec<Bytes> {
    let all = buf.freeze();
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let b = all.slice(start..end);
            start = end;
            b
        })
        .collect()
}

fn json(body: Bytes) -> Response<Frames> {
    let len = body.len();
    let mut res = Response::new(Frames::new(vec![body], true, Duration::ZERO));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(len));
    res
}

fn sse(frames: Vec<Bytes>, delay: Duration, content_type: &'static str) -> Response<Frames> {
    let mut res = Response::new(Frames::new(frames, false, delay));
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The OpenAI `"usage":{…}` member.
fn openai_usage(buf: &mut BytesMut, prompt: usize, n: usize) {
    put(
        buf,
        format_args!(
            r#""usage":{{"prompt_tokens":{prompt},"completion_tokens":{n},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
            prompt + n
        ),
    );
}

fn openai(t: &Templates, req: &ChatRequest, prompt: usize, delay: Duration) -> Response<Frames> {
    let mut buf = BytesMut::with_capacity(768 + t.text.len());
    if !req.stream {
        put(
            &mut buf,
            format_args!(
                r#"{{"id":"chatcmpl-mockbench","object":"chat.completion","created":{CREATED},"model":"{OPENAI_MODEL}","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}","refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"#,
                t.text
            ),
        );
        openai_usage(&mut buf, prompt, t.chunks);
        buf.put_slice(br#","service_tier":"default","system_fingerprint":"fp_mock"}"#);
        return json(buf.freeze());
    }
    let include_usage = req.stream_options.include_usage;
    let mut frames = t.openai[usize::from(include_usage)].clone();
    if include_usage {
        buf.put_slice(b"data: ");
        buf.put_slice(t.openai_head.as_bytes());
        buf.put_slice(b"[],");
        openai_usage(&mut buf, prompt, t.chunks);
        buf.put_slice(b"}\n\n");
        frames.push(buf.freeze());
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    sse(frames, delay, "text/event-stream; charset=utf-8")
}

fn anthropic(t: &Templates, req: &ChatRequest, prompt: usize, delay: Duration) -> Response<Frames> {
    let n = t.chunks;
    let mut buf = BytesMut::with_capacity(1024 + t.text.len());
    if !req.stream {
        put(
            &mut buf,
            format_args!(
                r#"{{"model":"{ANTHROPIC_MODEL}","id":"msg_mockbench","type":"message","role":"assistant","content":[{{"type":"text","text":"{}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{prompt},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"output_tokens":{n},"service_tier":"standard"}}}}"#,
                t.text
            ),
        );
        return json(buf.freeze());
    }
    let start = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"{ANTHROPIC_MODEL}\",\"id\":\"msg_mockbench\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{prompt},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"cache_creation\":{{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":0}},\"output_tokens\":1,\"service_tier\":\"standard\"}}}}}}\n\n"
    );
    let delta = format!(
        "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"input_tokens\":{prompt},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":{n}}}}}\n\n"
    );
    let mut frames = Vec::with_capacity(t.anthropic.len() + 3);
    frames.push(Bytes::from(start));
    frames.extend(t.anthropic.iter().cloned());
    frames.push(Bytes::from(delta));
    frames.push(Bytes::from_static(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    sse(frames, delay, "text/event-stream; charset=utf-8")
}

/// One Gemini response object; `upto` candidate tokens so far, `last` adds finishReason.
fn gemini_object(buf: &mut BytesMut, text: &str, prompt: usize, upto: usize, last: bool) {
    let finish = if last { r#","finishReason":"STOP""# } else { "" };
    put(
        buf,
        format_args!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}}{finish},"index":0}}],"usageMetadata":{{"promptTokenCount":{prompt},"candidatesTokenCount":{upto},"totalTokenCount":{},"promptTokensDetails":[{{"modality":"TEXT","tokenCount":{prompt}}}]}},"modelVersion":"{GEMINI_MODEL}","responseId":"mockbench"}}"#,
            prompt + upto
        ),
    );
}

fn gemini(t: &Templates, stream: bool, prompt: usize, delay: Duration) -> Response<Frames> {
    let n = t.chunks;
    if !stream {
        let mut buf = BytesMut::with_capacity(512 + t.text.len());
        gemini_object(&mut buf, &t.text, prompt, n, true);
        return json(buf.freeze());
    }
    // A stream always has at least one event, so the finishReason has somewhere to go.
    let events = n.max(1);
    let mut buf = BytesMut::with_capacity(events * 360);
    let mut ends = Vec::with_capacity(events);
    for i in 1..=events {
        buf.put_slice(b"data: ");
        gemini_object(&mut buf, WORD, prompt, i.min(n), i == events);
        // Gemini separates its SSE events with CRLF.
        buf.put_slice(b"\r\n\r\n");
        ends.push(buf.len());
    }
    sse(split(buf, &ends), delay, "text/event-stream")
}

async fn handle(t: Arc<Templates>, req: Request<Incoming>) -> Result<Response<Frames>, Infallible> {
    let (parts, body) = req.into_parts();
    // Read the whole body even when it is not needed, so the connection stays reusable.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(json(Bytes::from_static(b"{\"error\":\"bad request body\"}"))),
    };
    enum Kind {
        OpenAi,
        Anthropic,
        Gemini { stream: bool },
        Other,
    }
    let kind = match parts.uri.path() {
        _ if parts.method != Method::POST => Kind::Other,
        p if p.ends_with("/chat/completions") => Kind::OpenAi,
        p if p.ends_with("/messages") => Kind::Anthropic,
        p if p.ends_with(":streamGenerateContent") => Kind::Gemini { stream: true },
        p if p.ends_with(":generateContent") => Kind::Gemini { stream: false },
        _ => Kind::Other,
    };
    let prompt = (body.len() / 4).max(1);
    let chat = match kind {
        Kind::OpenAi | Kind::Anthropic => serde_json::from_slice::<ChatRequest>(&body).unwrap_or_default(),
        _ => ChatRequest::default(),
    };
    let streaming = chat.stream || matches!(kind, Kind::Gemini { stream: true });
    // A benchmark can pace one request differently from the `--chunk-delay-ms` default.
    let delay = match parts.headers.get("x-mock-chunk-delay-ms").map(|v| v.to_str().map(str::parse)) {
        Some(Ok(Ok(ms))) => Duration::from_millis(ms),
        _ => t.delay,
    };
    if !streaming && !delay.is_zero() && !matches!(kind, Kind::Other) {
        let generation = delay.saturating_mul(u32::try_from(t.chunks).unwrap_or(u32::MAX));
        tokio::time::sleep(generation).await;
    }
    Ok(match kind {
        Kind::OpenAi => openai(&t, &chat, prompt, delay),
        Kind::Anthropic => anthropic(&t, &chat, prompt, delay),
        Kind::Gemini { stream } => gemini(&t, stream, prompt, delay),
        Kind::Other => json(Bytes::from_static(br#"{"object":"list","data":[]}"#)),
    })
}

async fn serve(listener: TcpListener, templates: Arc<Templates>) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors under load: back off rather than spin.
                eprintln!("mock_upstream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let templates = Arc::clone(&templates);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&templates), req));
            // Client resets under load are expected; nothing to report.
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen).await?;
        let templates = Arc::new(Templates::new(args.chunks, Duration::from_millis(args.chunk_delay_ms)));
        eprintln!("mock_upstream listening on {} ({} chunks/stream)", listener.local_addr()?, args.chunks);
        tokio::select! {
            () = serve(listener, templates) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
