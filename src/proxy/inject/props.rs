//! Properties of the injected-usage filter over any framing: the client gets exactly the
//! stream it would have got without `include_usage` (the usage-only chunk gone, no
//! `"usage":null`), and any bytes come out the same whatever frames they arrive in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::*;
use futures_util::FutureExt;
use http_body_util::{BodyExt, StreamBody};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Cuts `body` into frames at `cuts` (modulo its length + 1, sorted; repeats give empty frames).
fn frames(body: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for end in at {
        out.push(body[start..end].to_vec());
        start = end;
    }
    out.push(body[start..].to_vec());
    out
}

/// What the filter hands the client for `frames` (all ready at once).
fn filtered(frames: Vec<Vec<u8>>) -> Vec<u8> {
    let frames = frames.into_iter().map(|f| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(f))));
    let body = InjectedUsageFilter::new(StreamBody::new(futures_util::stream::iter(frames)));
    body.collect().now_or_never().expect("ready").expect("no error").to_bytes().to_vec()
}

/// The two line ends that end an event; a CR followed by an LF would be one line end.
const EVENT_ENDS: &[&str] = &["\n\n", "\r\n\r\n", "\r\r", "\n\r\n", "\r\n\n", "\n\r", "\r\r\n"];

/// One event of a chat stream, as the client asked for it and as the provider sends it
/// once `include_usage` was injected.
#[derive(Debug, Clone)]
enum Event {
    Delta { content: String, obfuscation: Option<String> },
    Comment,
    Usage { prompt: u64, completion: u64 },
}

fn event() -> impl Strategy<Value = (Event, &'static str)> {
    let delta = (any::<String>(), option::of("[a-zA-Z0-9]{0,8}"))
        .prop_map(|(content, obfuscation)| Event::Delta { content, obfuscation });
    let usage =
        (any::<u64>(), any::<u64>()).prop_map(|(prompt, completion)| Event::Usage { prompt, completion });
    (prop_oneof![6 => delta, 1 => Just(Event::Comment), 1 => usage], select(EVENT_ENDS))
}

/// The event's bytes as the client would see them without injection (`None`: not at
/// all) and as they come from upstream with it.
fn render(event: &Event, end: &str) -> (Option<String>, String) {
    match event {
        Event::Delta { content, obfuscation } => {
            let content = serde_json::to_string(content).unwrap();
            let head = format!(
                r#"data: {{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":{content}}}}}]"#
            );
            let tail = obfuscation.as_ref().map(|o| format!(r#","obfuscation":"{o}""#)).unwrap_or_default();
            (Some(format!("{head}{tail}}}{end}")), format!(r#"{head},"usage":null{tail}}}{end}"#))
        }
        Event::Comment => (Some(format!(": keep-alive{end}")), format!(": keep-alive{end}")),
        Event::Usage { prompt, completion } => (
            None,
            format!(
                r#"data: {{"id":"c","choices":[],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion}}}}}{end}"#
            ),
        ),
    }
}

/// The event end as first written: a rescan from the start of the buffer for a line end
/// directly followed by another. The incremental [`Boundary`] must agree with it.
fn rescanned_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(found) = memchr::memchr2(b'\n', b'\r', &buf[i..]) {
        i += found;
        let line_end = match buf[i] {
            b'\r' if buf.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' if i + 1 == buf.len() => return None,
            _ => i + 1,
        };
        match buf.get(line_end) {
            Some(b'\n') => return Some(line_end + 1),
            Some(b'\r') if buf.get(line_end + 1) == Some(&b'\n') => return Some(line_end + 2),
            Some(b'\r') if line_end + 1 < buf.len() => return Some(line_end + 1),
            _ => i = line_end,
        }
    }
    None
}

/// What the client gets of a whole body by that rescan: rewritten events, then the rest.
fn rescanned(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(end) = rescanned_event_end(rest) {
        rewrite_event(&rest[..end], &mut out);
        rest = &rest[end..];
    }
    out.extend_from_slice(rest);
    out
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn an_injected_stream_in_any_frames_reaches_the_client_as_asked(
        events in vec(event(), 0..12),
        done_end in select(EVENT_ENDS),
        cuts in vec(any::<Index>(), 0..32),
    ) {
        let (mut asked, mut upstream) = (String::new(), String::new());
        for (event, end) in &events {
            let (client, sent) = render(event, end);
            asked.push_str(client.as_deref().unwrap_or_default());
            upstream.push_str(&sent);
        }
        let done = format!("data: [DONE]{done_end}");
        asked.push_str(&done);
        upstream.push_str(&done);
        let got = filtered(frames(upstream.as_bytes(), &cuts));
        prop_assert_eq!(String::from_utf8_lossy(&got), asked);
    }

    #[test]
    fn any_bytes_come_out_the_same_in_any_frames(
        body in vec(prop_oneof![
            3 => select(&["data: ", "\n", "\r", "\r\n", ",\"usage\":null", "\"choices\":[]", "{", "}", "\"usage\":{}", ":"][..])
                .prop_map(|s| s.as_bytes().to_vec()),
            1 => vec(any::<u8>(), 0..8),
        ], 0..40).prop_map(|p| p.concat()),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let whole = filtered(vec![body.clone()]);
        prop_assert_eq!(&whole, &rescanned(&body));
        prop_assert_eq!(filtered(frames(&body, &cuts)), whole.clone());
        // The filter only ever takes bytes out.
        prop_assert!(whole.len() <= body.len());
    }
}
