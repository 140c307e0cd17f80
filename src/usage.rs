//! Token metering: turns a provider's response body, as it streams by, into normalized [`Usage`].
//!
//! The proxy creates one [`Meter`] per metered response and hands it every body slice in order;
//! [`Meter::finish`] settles what was seen into a [`Metered`]. Nothing here does I/O or holds the
//! body: a JSON body is kept only up to a cap, and an event stream only ever holds the event being
//! received.
//!
//! * [`sse`]: the WHATWG event-stream framer (line ends, comments, multi-line data, partial input).
//! * `json`: lenient JSON field types, so one odd field costs that field and not the payload.
//! * `openai`, `anthropic`, `gemini`: where each wire family reports usage and how it maps
//!   onto [`Usage`] (the rest of what tollgate knows of each provider is in
//!   [`crate::provider`]).
//!
//! Every provider is normalized to "inclusive totals + subsets": `input_tokens` counts every input
//! token (cache reads and writes included), `output_tokens` every output token (reasoning
//! included), and the other fields are parts of those two. The billed dimensions beyond tokens
//! (service tier, audio tokens, server-side tool calls, inference geo) are read wherever a
//! response reports them and stay `None` where it does not.

use bytes::Bytes;

mod anthropic;
mod decode;
mod gemini;
mod json;
pub mod observer;
mod openai;
pub mod sse;

#[cfg(test)]
mod tests;

/// Which metered endpoint a request hits, decided from the request path (by
/// [`crate::provider`]); it fixes the wire format of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI `/chat/completions`.
    ChatCompletions,
    /// OpenAI legacy `/completions`.
    Completions,
    /// OpenAI `/responses`.
    Responses,
    /// OpenAI `/embeddings`.
    Embeddings,
    /// Anthropic `/v1/messages`.
    Messages,
    /// Gemini `models/{model}:generateContent`.
    GenerateContent,
    /// Gemini `models/{model}:streamGenerateContent`.
    StreamGenerateContent,
    /// Gemini `models/{model}:embedContent`.
    EmbedContent,
}

/// Normalized token counts of one response (inclusive totals plus their subsets), and the
/// billed dimensions beyond tokens it reported (`None` where the response said nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token: uncached + read from cache + written to cache (+ Gemini tool-use prompt).
    pub input_tokens: u64,
    /// Part of `input_tokens` read from a prompt cache.
    pub cached_input_tokens: u64,
    /// Part of `input_tokens` written to a prompt cache.
    pub cache_write_tokens: u64,
    /// Part of `cache_write_tokens` written with a 1-hour TTL (Anthropic), priced apart.
    pub cache_write_1h_tokens: u64,
    /// Every output token, reasoning/thinking included.
    pub output_tokens: u64,
    /// Part of `output_tokens` spent on reasoning/thinking.
    pub reasoning_tokens: u64,
    /// Part of `input_tokens` that was audio (priced at the model's audio input rate).
    pub audio_input_tokens: Option<u64>,
    /// Part of `output_tokens` that was audio (priced at the model's audio output rate).
    pub audio_output_tokens: Option<u64>,
    /// Server-side web searches run for the request (a fee per 1,000).
    pub web_search_requests: Option<u64>,
    /// Server-side web fetches run for the request (a fee per 1,000).
    pub web_fetch_requests: Option<u64>,
    /// The tier that served the request, as the response reports it (never the request's).
    pub service_tier: Option<String>,
    /// Where the request was processed (Anthropic `inference_geo`), a factor on token cost.
    pub inference_geo: Option<String>,
}

/// What a [`Meter`] learned from one response body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metered {
    /// Model as reported by the response (dated snapshot, `modelVersion`, router slug).
    pub model: Option<String>,
    /// Last usage the provider reported; `None` when it reported none or it could not be read.
    pub usage: Option<Usage>,
    /// The terminal usage was seen; `false` with `usage` set means the values are lower bounds.
    pub complete: bool,
    /// Non-2xx status, or an error delivered inside a 2xx body.
    pub upstream_error: bool,
    /// An event (or the JSON body) was over the buffer cap and skipped; a JSON body's usage
    /// is then unknown, a stream's usage comes from its other events.
    pub overflowed: bool,
    /// Server-sent events seen (for estimating output when nothing was reported).
    pub events: u64,
}

/// Watches one response body go by and extracts its usage; fed every slice in order.
#[derive(Debug)]
pub struct Meter {
    decoder: Decoder,
    body: Body,
    tally: Tally,
    status: u16,
}

impl Meter {
    /// A meter for one response; `cap_bytes` bounds what it buffers (a JSON body, or one event).
    pub fn new(api: Api, status: u16, is_event_stream: bool, cap_bytes: usize) -> Meter {
        Meter {
            decoder: Decoder::new(api),
            body: if is_event_stream {
                Body::Sse(sse::Framer::new(cap_bytes))
            } else {
                Body::Json { parts: Vec::new(), len: 0, cap: cap_bytes, overflowed: false }
            },
            tally: Tally::default(),
            status,
        }
    }

    /// Observes the next slice of the (decoded) response body.
    pub fn feed(&mut self, bytes: &[u8]) {
        match &mut self.body {
            Body::Json { .. } => self.feed_bytes(&Bytes::copy_from_slice(bytes)),
            Body::Sse(framer) => {
                let (decoder, tally) = (&mut self.decoder, &mut self.tally);
                framer.feed(bytes, &mut |event| {
                    tally.events += 1;
                    decoder.event(event, tally)
                })
            }
        }
    }

    /// Observes the next frame as it goes to the client: a JSON body keeps only
    /// references to the frames (no copy) until it is parsed at the end.
    pub fn feed_bytes(&mut self, bytes: &Bytes) {
        match &mut self.body {
            Body::Sse(_) => self.feed(bytes),
            Body::Json { parts, len, cap, overflowed } => {
                if *overflowed {
                    return;
                }
                if len.saturating_add(bytes.len()) > *cap {
                    *overflowed = true;
                    *parts = Vec::new();
                    return;
                }
                *len += bytes.len();
                parts.push(bytes.clone());
            }
        }
    }

    /// Settles the response at the end of its body (or when it was cut short).
    pub fn finish(self) -> Metered {
        let Meter { mut decoder, body, mut tally, status } = self;
        // An SSE event still open here was never terminated: it is dropped with the framer.
        let overflowed = match body {
            Body::Sse(framer) => framer.overflowed(),
            Body::Json { parts, len, overflowed, .. } => {
                if !overflowed {
                    match parts.as_slice() {
                        [one] => decoder.body(one, &mut tally),
                        many => {
                            let mut joined = Vec::with_capacity(len);
                            for p in many {
                                joined.extend_from_slice(p);
                            }
                            decoder.body(&joined, &mut tally);
                        }
                    }
                }
                overflowed
            }
        };
        // An event over the cap is skipped, not the stream: usage reported in the other
        // events still stands (a JSON body over the cap was never parsed, so has none).
        let usage = tally.usage;
        Metered {
            model: tally.model,
            complete: tally.complete && usage.is_some(),
            usage,
            upstream_error: tally.upstream_error || !(200..300).contains(&status),
            overflowed,
            events: tally.events,
        }
    }
}

#[derive(Debug)]
enum Body {
    Sse(sse::Framer),
    Json { parts: Vec<Bytes>, len: usize, cap: usize, overflowed: bool },
}

/// What the decoders have established so far; each provider module writes into it.
#[derive(Debug, Default)]
struct Tally {
    model: Option<String>,
    usage: Option<Usage>,
    /// The provider's terminal usage report was seen.
    complete: bool,
    upstream_error: bool,
    /// Events dispatched by the SSE framer.
    events: u64,
}

impl Tally {
    /// Records the response's model unless one is known; empty names (Azure's first chunk) never count.
    fn offer_model(&mut self, model: json::Text) {
        if self.model.is_none() {
            self.model = model.0.filter(|m| !m.is_empty());
        }
    }
}

/// The per-family decoder; the API, not the provider kind, fixes the wire format.
#[derive(Debug)]
enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
    Gemini(gemini::Decoder),
}

impl Decoder {
    fn new(api: Api) -> Decoder {
        // Not the provider kind: an Anthropic- or Gemini-kind provider answering on an
        // OpenAI-shaped compatibility endpoint still speaks the OpenAI format.
        match api {
            Api::ChatCompletions | Api::Completions | Api::Embeddings | Api::Responses => {
                Decoder::OpenAi(openai::Decoder::new(api))
            }
            Api::Messages => Decoder::Anthropic(anthropic::Decoder::default()),
            Api::GenerateContent | Api::StreamGenerateContent | Api::EmbedContent => {
                Decoder::Gemini(gemini::Decoder)
            }
        }
    }

    fn event(&mut self, event: sse::Event<'_>, tally: &mut Tally) {
        match self {
            Decoder::OpenAi(d) => d.event(event, tally),
            Decoder::Anthropic(d) => d.event(event, tally),
            Decoder::Gemini(d) => d.event(event, tally),
        }
    }

    fn body(&mut self, body: &[u8], tally: &mut Tally) {
        match self {
            Decoder::OpenAi(d) => d.body(body, tally),
            Decoder::Anthropic(d) => d.body(body, tally),
            Decoder::Gemini(d) => d.body(body, tally),
        }
    }
}
