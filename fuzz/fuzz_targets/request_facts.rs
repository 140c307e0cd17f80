//! Request facts and usage injection over any request: `request_facts` never panics,
//! Gemini paths name the model, and when `include_usage` is added to a streaming request
//! the result is JSON with the flag set and every other field as it was.
//! Input: [api (low 3 bits)] [path] \n [body...].
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use tollgate::proxy::inject::add_include_usage;
use tollgate::proxy::facts::request_facts;
use tollgate::usage::Api;
use tollgate_fuzz::{take, APIS};

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [select] = take::<1>(&mut data);
    let api = APIS[usize::from(select & 7)];
    let (path, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let path = String::from_utf8_lossy(path);
    let facts = request_facts(api, &path, body);
    assert!(facts.stream || api != Api::StreamGenerateContent);

    let Some(injected) = add_include_usage(body) else { return };
    let _: &RawValue = serde_json::from_slice(&injected).expect("injection keeps the body JSON");
    // Numbers a Value cannot hold (1e400) are kept as written: compare where it can.
    let Ok(before) = serde_json::from_slice::<Value>(body) else { return };
    let out: Value = serde_json::from_slice(&injected).expect("the same numbers read the same");
    assert_eq!(out["stream_options"]["include_usage"], Value::Bool(true), "include_usage not set");
    let strip = |mut v: Value| {
        let options = v.as_object_mut().and_then(|o| o.remove("stream_options"));
        (
            v,
            options.and_then(|mut o| {
                o.as_object_mut().map(|m| {
                    m.remove("include_usage");
                    m.clone()
                })
            }),
        )
    };
    let (rest_before, options_before) = strip(before);
    let (rest_after, options_after) = strip(out);
    assert_eq!(rest_before, rest_after, "injection changed another field");
    assert_eq!(
        options_before.unwrap_or_default(),
        options_after.unwrap_or_default(),
        "injection changed stream_options"
    );
    if facts.stream && facts.model.is_some() {
        let again = request_facts(api, &path, &injected);
        assert!(again.include_usage, "the injected flag does not read back");
        assert_eq!(again.model, facts.model, "injection changed the model");
    }
});
