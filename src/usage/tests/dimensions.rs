//! The billed dimensions beyond tokens in every wire format that carries them, streamed ones
//! split at every byte offset: service tiers, audio tokens, server-side tool calls and
//! Anthropic's inference geo.

use super::synthetic::stream;
use super::*;

fn tokens(input: u64, cached: u64, write: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: write,
        output_tokens: output,
        ..Usage::default()
    }
}

#[test]
fn openai_chat_stream_reports_its_tier_and_audio_tokens() {
    let chunk = |rest: &str| {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-audio-preview-2025-06-03","service_tier":"priority",{rest}}}"#
        )
    };
    let body = stream(&[
        (
            "",
            &chunk(
                r#""choices":[{"index":0,"delta":{"role":"assistant","content":null,"audio":{"id":"audio_1","transcript":"Hi"}},"finish_reason":null}],"usage":null"#,
            ),
        ),
        (
            "",
            &chunk(
                r#""choices":[{"index":0,"delta":{"audio":{"data":"UklGRg==","transcript":" there"}},"finish_reason":null}],"usage":null"#,
            ),
        ),
        ("", &chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null"#)),
        (
            "",
            &chunk(
                r#""choices":[],"usage":{"prompt_tokens":120,"completion_tokens":300,"total_tokens":420,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":100,"text_tokens":20},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":280,"text_tokens":20}}"#,
            ),
        ),
        ("", "[DONE]"),
    ]);
    let got = meter_all_slicings(Api::ChatCompletions, 200, true, &body);
    let want = Usage {
        audio_input_tokens: Some(100),
        audio_output_tokens: Some(280),
        service_tier: Some("priority".into()),
        ..tokens(120, 0, 0, 300)
    };
    assert_eq!(got.usage, Some(want));
    assert!(got.complete);
}

#[test]
fn openai_chat_tier_comes_from_the_response_and_is_kept_as_reported() {
    // The usage chunk of an older stream has no tier: the earlier chunks' value stands.
    let body = stream(&[
        ("", r#"{"model":"gpt-5","service_tier":"fast","choices":[{"index":0,"delta":{"content":"a"}}]}"#),
        ("", r#"{"model":"gpt-5","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#),
    ]);
    let got = meter_all_slicings(Api::ChatCompletions, 200, true, &body);
    assert_eq!(got.usage.unwrap().service_tier.as_deref(), Some("fast"));
    // A body with no tier and no audio details leaves both unknown.
    let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}"#;
    let got = meter(Api::ChatCompletions, 200, false, &[body]);
    assert_eq!(got.usage, Some(tokens(5, 0, 0, 1)));
}

/// A Responses stream with two web searches, each shown in the five events OpenAI sends for
/// one call; `output` is the terminal response's output array.
fn responses_stream_with_searches(named: bool, output: &str) -> Vec<u8> {
    let mut events: Vec<(String, String)> = vec![(
        "response.created".into(),
        r#"{"type":"response.created","response":{"model":"gpt-5-2025-08-07","service_tier":"auto","status":"in_progress","output":[],"usage":null}}"#.into(),
    )];
    for (i, id) in ["ws_a1", "ws_b2"].iter().enumerate() {
        let item = |status: &str| {
            format!(
                r#"{{"id":"{id}","type":"web_search_call","status":"{status}","action":{{"type":"search","query":"q{i}"}}}}"#
            )
        };
        events.push((
            "response.output_item.added".into(),
            format!(
                r#"{{"type":"response.output_item.added","output_index":{i},"item":{}}}"#,
                item("in_progress")
            ),
        ));
        for phase in ["in_progress", "searching", "completed"] {
            events.push((
                format!("response.web_search_call.{phase}"),
                format!(
                    r#"{{"type":"response.web_search_call.{phase}","output_index":{i},"item_id":"{id}"}}"#
                ),
            ));
        }
        events.push((
            "response.output_item.done".into(),
            format!(
                r#"{{"type":"response.output_item.done","output_index":{i},"item":{}}}"#,
                item("completed")
            ),
        ));
    }
    events.push((
        "response.output_text.delta".into(),
        r#"{"type":"response.output_text.delta","item_id":"msg_1","delta":"no web_search_call here"}"#.into(),
    ));
    events.push((
        "response.completed".into(),
        format!(
            r#"{{"type":"response.completed","response":{{"model":"gpt-5-2025-08-07","service_tier":"priority","status":"completed","output":{output},"usage":{{"input_tokens":9000,"input_tokens_details":{{"cached_tokens":0}},"output_tokens":700,"output_tokens_details":{{"reasoning_tokens":300}},"total_tokens":9700}}}}}}"#
        ),
    ));
    let pairs: Vec<(&str, &str)> =
        events.iter().map(|(n, d)| (if named { n.as_str() } else { "" }, d.as_str())).collect();
    stream(&pairs)
}

#[test]
fn responses_stream_counts_each_web_search_once_and_bills_the_terminal_tier() {
    let full = r#"[{"id":"ws_a1","type":"web_search_call","status":"completed"},{"id":"rs_1","type":"reasoning","summary":[]},{"id":"ws_b2","type":"web_search_call","status":"completed"},{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"web_search_call"}]}]"#;
    let want = Usage {
        reasoning_tokens: 300,
        web_search_requests: Some(2),
        service_tier: Some("priority".into()),
        ..tokens(9000, 0, 0, 700)
    };
    for named in [true, false] {
        for output in [full, "[]", "null"] {
            let body = responses_stream_with_searches(named, output);
            let got = meter_all_slicings(Api::Responses, 200, true, &body);
            assert_eq!(got.usage.as_ref(), Some(&want), "named {named}, output {output}");
            assert!(got.complete);
        }
    }
    // Cut before the terminal event: nothing was reported, whatever the searches seen.
    let body = responses_stream_with_searches(true, full);
    let cut = body.len() - 200;
    let got = meter(Api::Responses, 200, true, &[&body[..cut]]);
    assert!(got.usage.is_none() && !got.complete);
}

#[test]
fn responses_body_counts_output_items_by_id() {
    let body = br#"{"model":"o3","status":"completed","service_tier":"flex","output":[{"type":"web_search_call","id":"ws_1"},{"type":"web_search_call","id":"ws_1"},{"type":"web_search_call"},{"type":"web_search_call","id":""},{"type":"file_search_call","id":"fs_1"},"x"],"usage":{"input_tokens":10,"output_tokens":2}}"#;
    let got = meter_all_slicings(Api::Responses, 200, false, body);
    let usage = got.usage.unwrap();
    assert_eq!(usage.web_search_requests, Some(3), "ws_1 once, and two calls without an id");
    assert_eq!(usage.service_tier.as_deref(), Some("flex"));
    let body = br#"{"model":"o3","status":"completed","output":[{"type":"message","id":"m"}],"usage":{"input_tokens":10,"output_tokens":2}}"#;
    let got = meter(Api::Responses, 200, false, &[body]);
    assert_eq!(got.usage, Some(tokens(10, 0, 0, 2)), "no search: the dimension is absent");
}

#[test]
fn anthropic_stream_server_tools_tier_and_geo() {
    let body = stream(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"model":"claude-opus-4-6","usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":2000,"output_tokens":1,"service_tier":"standard","inference_geo":"us"}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":4200,"cache_creation_input_tokens":0,"cache_read_input_tokens":2000,"output_tokens":640,"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let got = meter_all_slicings(Api::Messages, 200, true, &body);
    let want = Usage {
        web_search_requests: Some(3),
        web_fetch_requests: Some(1),
        service_tier: Some("standard".into()),
        inference_geo: Some("us".into()),
        ..tokens(6200, 2000, 0, 640)
    };
    assert_eq!(got.usage, Some(want));
    assert!(got.complete);
    // Cut before message_delta: what message_start said, flagged incomplete.
    let cut = body.windows(20).position(|w| w == b"event: message_delta").unwrap();
    let got = meter(Api::Messages, 200, true, &[&body[..cut]]);
    let usage = got.usage.unwrap();
    assert_eq!((usage.inference_geo.as_deref(), usage.web_search_requests), (Some("us"), None));
    assert!(!got.complete);
}

#[test]
fn anthropic_batch_result_reports_its_tier() {
    let body = br#"{"model":"claude-haiku-4-5-20251001","type":"message","usage":{"input_tokens":100,"output_tokens":20,"service_tier":"batch","server_tool_use":{"web_search_requests":0}}}"#;
    let got = meter_all_slicings(Api::Messages, 200, false, body);
    let want =
        Usage { service_tier: Some("batch".into()), web_search_requests: Some(0), ..tokens(100, 0, 0, 20) };
    assert_eq!(got.usage, Some(want));
}

#[test]
fn gemini_stream_audio_input_from_the_last_snapshot() {
    let chunk = |text: &str, audio: u64, finish: &str| {
        format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}]}}{finish}}}],"usageMetadata":{{"promptTokenCount":{},"candidatesTokenCount":4,"totalTokenCount":{},"promptTokensDetails":[{{"modality":"TEXT","tokenCount":12}},{{"modality":"AUDIO","tokenCount":{audio}}}],"cacheTokensDetails":[{{"modality":"TEXT","tokenCount":0}}]}},"modelVersion":"gemini-2.5-flash"}}"#,
            12 + audio,
            16 + audio
        )
    };
    let body =
        stream(&[("", &chunk("Sum", 960, "")), ("", &chunk("mary", 960, r#","finishReason":"STOP""#))]);
    let got = meter_all_slicings(Api::StreamGenerateContent, 200, true, &body);
    let want = Usage { audio_input_tokens: Some(960), ..tokens(972, 0, 0, 4) };
    assert_eq!(got.usage, Some(want));
    assert!(got.complete);
    // snake_case (Vertex SDK dumps) and a details list without audio.
    let body = br#"{"usage_metadata":{"prompt_token_count":7,"candidates_token_count":1,"prompt_tokens_details":[{"modality":"IMAGE","token_count":5},{"modality":"AUDIO","token_count":2}]}}"#;
    let got = meter(Api::GenerateContent, 200, false, &[body]);
    assert_eq!(got.usage.unwrap().audio_input_tokens, Some(2));
    let body = br#"{"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":1,"promptTokensDetails":[{"modality":"TEXT","tokenCount":7}]}}"#;
    let got = meter(Api::GenerateContent, 200, false, &[body]);
    assert_eq!(got.usage.unwrap().audio_input_tokens, Some(0));
}
