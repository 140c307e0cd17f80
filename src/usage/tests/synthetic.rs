//! Synthetic bodies for documented rules the public corpus does not exercise.

use super::*;

/// Builds an event-stream body from `(event name, data)` pairs; an empty name writes no `event:`.
pub(super) fn stream(events: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, data) in events {
        if !name.is_empty() {
            out.push_str(&format!("event: {name}\n"));
        }
        out.push_str(&format!("data: {data}\n\n"));
    }
    out.into_bytes()
}

fn usage(input: u64, cached: u64, write: u64, output: u64, reasoning: u64) -> Usage {
    Usage {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_tokens: write,
        output_tokens: output,
        reasoning_tokens: reasoning,
        ..Usage::default()
    }
}

#[test]
fn openai_completions_stream_with_usage_chunk() {
    let body = stream(&[
        (
            "",
            r#"{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct-0914","choices":[{"text":"Hi","index":0,"finish_reason":null}],"usage":null}"#,
        ),
        (
            "",
            r#"{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct-0914","choices":[{"text":"","index":0,"finish_reason":"length"}],"usage":null}"#,
        ),
        (
            "",
            r#"{"id":"cmpl-1","object":"text_completion","model":"gpt-3.5-turbo-instruct-0914","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
        ),
        ("", "[DONE]"),
    ]);
    let got = meter_all_slicings(Api::Completions, 200, true, &body);
    assert_eq!(got.model.as_deref(), Some("gpt-3.5-turbo-instruct-0914"));
    assert_eq!(got.usage, Some(usage(5, 0, 0, 7, 0)));
    assert!(got.complete && !got.upstream_error);
}

#[test]
fn groq_with_only_x_groq_usage_counts_once() {
    let body = stream(&[
        (
            "",
            r#"{"model":"llama-3.1-8b-instant","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"x_groq":{"id":"req_1"}}"#,
        ),
        (
            "",
            r#"{"model":"llama-3.1-8b-instant","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"queue_time":0.01,"prompt_tokens":40,"completion_tokens":9,"total_tokens":49}}}"#,
        ),
        ("", "[DONE]"),
    ]);
    let got = meter_all_slicings(Api::ChatCompletions, 200, true, &body);
    assert_eq!(got.usage, Some(usage(40, 0, 0, 9, 0)));
    assert!(got.complete);
}

#[test]
fn openrouter_midstream_error_chunk() {
    let body = stream(&[
        (
            "",
            r#"{"model":"openai/gpt-4o","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#,
        ),
        (
            "",
            r#"{"model":"openai/gpt-4o","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
        ),
    ]);
    let got = meter_all_slicings(Api::ChatCompletions, 200, true, &body);
    assert_eq!(got.model.as_deref(), Some("openai/gpt-4o"));
    assert!(got.upstream_error && got.usage.is_none() && !got.complete);
}

#[test]
fn deepseek_cache_hits_without_details_and_cache_writes() {
    let body = br#"{"model":"deepseek-reasoner","usage":{"prompt_tokens":100,"completion_tokens":50,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36,"completion_tokens_details":{"reasoning_tokens":30}}}"#;
    let got = meter_all_slicings(Api::ChatCompletions, 200, false, body);
    assert_eq!(got.usage, Some(usage(100, 64, 0, 50, 30)));
    let body = br#"{"model":"gpt-5.6-sol","usage":{"prompt_tokens":3000,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":1000,"cache_write_tokens":2000}}}"#;
    let got = meter(Api::ChatCompletions, 200, false, &[body]);
    assert_eq!(got.usage, Some(usage(3000, 1000, 2000, 10, 0)));
}

#[test]
fn responses_incomplete_is_billable() {
    let body = stream(&[
        (
            "response.created",
            r#"{"type":"response.created","response":{"model":"o3-2025-04-16","status":"in_progress","usage":null}}"#,
        ),
        ("response.output_text.delta", r#"{"type":"response.output_text.delta","delta":"x"}"#),
        (
            "response.incomplete",
            r#"{"type":"response.incomplete","response":{"model":"o3-2025-04-16","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":256,"output_tokens_details":{"reasoning_tokens":256},"total_tokens":276}}}"#,
        ),
    ]);
    let got = meter_all_slicings(Api::Responses, 200, true, &body);
    assert_eq!(got.model.as_deref(), Some("o3-2025-04-16"));
    assert_eq!(got.usage, Some(usage(20, 0, 0, 256, 256)));
    assert!(got.complete && !got.upstream_error);
}

#[test]
fn responses_failed_and_error_events() {
    let body = stream(&[
        (
            "response.created",
            r#"{"type":"response.created","response":{"model":"gpt-5-2025-08-07","usage":null}}"#,
        ),
        (
            "response.failed",
            r#"{"type":"response.failed","response":{"model":"gpt-5-2025-08-07","status":"failed","error":{"code":"server_error"},"usage":null}}"#,
        ),
    ]);
    let got = meter_all_slicings(Api::Responses, 200, true, &body);
    assert_eq!(got.model.as_deref(), Some("gpt-5-2025-08-07"));
    assert!(got.upstream_error && got.usage.is_none() && !got.complete);

    let body = stream(&[(
        "error",
        r#"{"type":"error","sequence_number":3,"error":{"type":"invalid_request_error","code":"bad","message":"x"}}"#,
    )]);
    let got = meter_all_slicings(Api::Responses, 200, true, &body);
    assert!(got.upstream_error && got.usage.is_none());
}

#[test]
fn anthropic_one_hour_cache_write_and_thinking() {
    let body = stream(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"model":"claude-opus-4-6","usage":{"input_tokens":10,"cache_creation_input_tokens":2100,"cache_read_input_tokens":500,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":2000},"output_tokens":1}}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":300,"output_tokens_details":{"thinking_tokens":200}}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let got = meter_all_slicings(Api::Messages, 200, true, &body);
    let mut want = usage(2610, 500, 2100, 300, 200);
    want.cache_write_1h_tokens = 2000;
    assert_eq!(got.usage, Some(want));
    assert_eq!(got.model.as_deref(), Some("claude-opus-4-6"));
    assert!(got.complete && !got.upstream_error);
}

#[test]
fn anthropic_delta_replaces_input_with_server_tools_and_null_keeps() {
    let body = stream(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"model":"claude-sonnet-4-6","usage":{"input_tokens":100,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","usage":{"input_tokens":900,"cache_read_input_tokens":null,"output_tokens":50,"server_tool_use":{"web_search_requests":1}}}"#,
        ),
    ]);
    let got = meter_all_slicings(Api::Messages, 200, true, &body);
    let mut want = usage(900, 0, 0, 50, 0);
    want.web_search_requests = Some(1);
    assert_eq!(got.usage, Some(want));
}

#[test]
fn anthropic_compaction_iterations_are_summed() {
    let body = br#"{"model":"claude-opus-4-6","type":"message","usage":{"input_tokens":300,"output_tokens":40,"cache_read_input_tokens":0,"cache_creation_input_tokens":0,"iterations":[{"type":"compaction","input_tokens":5000,"output_tokens":700},{"type":"message","input_tokens":300,"output_tokens":40}]}}"#;
    let got = meter_all_slicings(Api::Messages, 200, false, body);
    assert_eq!(got.usage, Some(usage(5300, 0, 0, 740, 0)));
}

#[test]
fn gemini_tool_use_prompt_and_cached_content() {
    let body = stream(&[
        (
            "",
            r#"{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0}],"usageMetadata":{"promptTokenCount":1200,"cachedContentTokenCount":1024,"candidatesTokenCount":3,"toolUsePromptTokenCount":80,"thoughtsTokenCount":40,"totalTokenCount":1323},"modelVersion":"gemini-2.5-pro"}"#,
        ),
        (
            "",
            r#"{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1200,"cachedContentTokenCount":1024,"candidatesTokenCount":9,"toolUsePromptTokenCount":80,"thoughtsTokenCount":40,"totalTokenCount":1329},"modelVersion":"gemini-2.5-pro"}"#,
        ),
    ]);
    let got = meter_all_slicings(Api::StreamGenerateContent, 200, true, &body);
    assert_eq!(got.usage, Some(usage(1280, 1024, 0, 49, 40)));
    assert!(got.complete);
    // Cut before the finishReason chunk: the last snapshot is a lower bound, flagged incomplete.
    let cut = &body[..body.len() / 2 + 10];
    let got = meter(Api::StreamGenerateContent, 200, true, &[cut]);
    assert_eq!(got.usage, Some(usage(1280, 1024, 0, 43, 40)));
    assert!(!got.complete);
}

#[test]
fn gemini_json_array_stream_and_embed_content() {
    let body = br#"[{"candidates":[{"index":0}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":1},"modelVersion":"gemini-2.5-flash-lite"},
{"candidates":[{"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":5},"modelVersion":"gemini-2.5-flash-lite"}]"#;
    let got = meter_all_slicings(Api::StreamGenerateContent, 200, false, body);
    assert_eq!(got.usage, Some(usage(7, 0, 0, 5, 0)));
    assert!(got.complete);

    let body =
        br#"{"embedding":{"values":[0.1,-0.2]},"usageMetadata":{"promptTokenCount":6,"totalTokenCount":6}}"#;
    let got = meter(Api::EmbedContent, 200, false, &[body]);
    assert_eq!(got.usage, Some(usage(6, 0, 0, 0, 0)));
    let got = meter(Api::EmbedContent, 200, false, &[br#"{"embedding":{"values":[0.5]}}"#]);
    assert!(got.usage.is_none() && !got.complete && !got.upstream_error);
}

#[test]
fn odd_numbers_and_shapes_cost_only_their_field() {
    let body = br#"{"model":7,"usage":{"prompt_tokens":12.5,"completion_tokens":-3,"total_tokens":9,"prompt_tokens_details":"x"}}"#;
    let got = meter(Api::ChatCompletions, 200, false, &[body]);
    assert_eq!(got.model, None);
    assert_eq!(got.usage, Some(usage(0, 0, 0, 0, 0)));
    for junk in [&b"<html>502</html>"[..], b"", b"{", b"null", b"[1,2]", b"{\"usage\":[]}"] {
        let got = meter(Api::ChatCompletions, 200, false, &[junk]);
        assert!(got.usage.is_none() && !got.complete);
    }
}

#[test]
fn error_status_still_reads_usage() {
    let body =
        br#"{"model":"gpt-4o","error":{"message":"x"},"usage":{"prompt_tokens":3,"completion_tokens":0}}"#;
    let got = meter(Api::ChatCompletions, 500, false, &[body]);
    assert!(got.upstream_error);
    assert_eq!(got.usage, Some(usage(3, 0, 0, 0, 0)));
}

#[test]
fn json_over_the_cap_is_unknown_but_an_oversized_stream_event_does_not_void_usage() {
    let body = br#"{"model":"gpt-4o","usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
    let mut m = Meter::new(Api::ChatCompletions, 200, false, 16);
    for part in body.chunks(5) {
        m.feed(part);
    }
    let got = m.finish();
    assert!(got.overflowed && got.usage.is_none() && !got.complete);

    let big = format!(r#"{{"model":"m","choices":[{{"delta":{{"content":"{}"}}}}]}}"#, "x".repeat(500));
    let body = stream(&[
        ("", &big),
        ("", r#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#),
    ]);
    let mut m = Meter::new(Api::ChatCompletions, 200, true, 256);
    m.feed(&body);
    let got = m.finish();
    // A huge content event (an inline image, say) is skipped; the usage chunk still counts.
    assert!(got.overflowed && got.complete);
    assert_eq!(got.usage, Some(usage(3, 0, 0, 1, 0)));
    assert_eq!(got.model.as_deref(), Some("m"));
}
