//! Properties of the SSE [`Framer`](crate::usage::sse::Framer): it agrees with a
//! whole-body, line-by-line reading of the WHATWG rules (with the framer's cap rule) in any
//! partition of any bytes, and the line-end style never changes the events.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::props::{config, partition};
use crate::usage::sse::Framer;

type Events = Vec<(String, String)>;

fn frame(slices: &[&[u8]], cap: usize) -> (Events, bool) {
    let mut framer = Framer::new(cap);
    let mut out = Vec::new();
    for s in slices {
        framer.feed(s, &mut |e| out.push((e.name.to_owned(), e.data.to_owned())));
    }
    (out, framer.overflowed())
}

/// Splits a whole body into its lines (a line ends at CRLF, LF or CR) and the
/// unterminated rest.
fn lines(body: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                lines.push(&body[start..i]);
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                lines.push(&body[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    (lines, &body[start..])
}

/// The events of a whole body per the WHATWG "interpreting an event stream" steps, read
/// line by line, with the framer's bound: an event whose data + name + current line would
/// pass `cap` bytes is skipped up to the blank line that ends it. Decoding each field
/// lossily equals decoding the stream first: CR, LF and `:` are never part of a multi-byte
/// sequence, so they split the replacements the same way.
fn reference(body: &[u8], cap: usize) -> (Events, bool) {
    let (lines, rest) = lines(body);
    let (mut events, mut overflowed, mut skipping) = (Vec::new(), false, false);
    let (mut data, mut name, mut has_data) = (Vec::<u8>::new(), Vec::<u8>::new(), false);
    for line in lines {
        if skipping {
            skipping = !line.is_empty();
            continue;
        }
        if data.len() + name.len() + line.len() > cap {
            (overflowed, skipping) = (true, true);
            (data, name, has_data) = (Vec::new(), Vec::new(), false);
            continue;
        }
        if line.is_empty() {
            if has_data {
                let name = if name.is_empty() { "message".into() } else { String::from_utf8_lossy(&name) };
                events.push((name.into_owned(), String::from_utf8_lossy(&data).into_owned()));
            }
            (data, name, has_data) = (Vec::new(), Vec::new(), false);
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => (&line[..i], line[i + 1..].strip_prefix(b" ").unwrap_or(&line[i + 1..])),
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            b"event" => name = value.to_vec(),
            _ => {}
        }
    }
    // An unterminated last event is never dispatched, but its bytes still count.
    if !skipping && data.len() + name.len() + rest.len() > cap {
        overflowed = true;
    }
    (events, overflowed)
}

const LINE_PIECES: &[&str] = &[
    "data",
    "data:",
    "data: ",
    ":",
    " ",
    "event",
    "event:",
    "event: ",
    "id: 7",
    "retry: 10",
    "x",
    "{\"a\":1}",
    "\u{e9}",
    "\u{feff}",
    "é",
];

/// One line's bytes: field-like pieces and now and then anything but a line end.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => select(LINE_PIECES).prop_map(|p| p.as_bytes().to_vec()),
        1 => vec(any::<u8>().prop_filter("no line end", |b| *b != b'\r' && *b != b'\n'), 0..6),
    ];
    vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// Bytes of an event stream: lines, blank lines and line ends of every style, and noise.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => line(),
        3 => select(&["\n", "\r", "\r\n"][..]).prop_map(|e| e.as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..8),
    ];
    vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn framer_in_any_partition_follows_the_reference(
        body in stream(),
        cap in prop_oneof![Just(usize::MAX), 0usize..64],
        cuts in vec(any::<Index>(), 0..32),
    ) {
        let want = reference(&body, cap);
        prop_assert_eq!(frame(&partition(&body, &cuts), cap), want.clone());
        prop_assert_eq!(frame(&[&body], cap), want);
    }

    #[test]
    fn the_line_end_style_never_changes_the_events(
        lines in vec((line(), select(&["\n", "\r", "\r\n"][..])), 0..24),
        cuts in vec(any::<Index>(), 0..16),
    ) {
        let lf: Vec<u8> = lines.iter().flat_map(|(l, _)| [&l[..], b"\n"].concat()).collect();
        let mut mixed = Vec::new();
        for (l, end) in &lines {
            // A CR then an empty line ended by LF is one CRLF, not two line ends.
            let end = if *end == "\n" && l.is_empty() && mixed.last() == Some(&b'\r') { "\r\n" } else { end };
            mixed.extend_from_slice(l);
            mixed.extend_from_slice(end.as_bytes());
        }
        prop_assert_eq!(frame(&partition(&mixed, &cuts), usize::MAX), frame(&[&lf], usize::MAX));
    }

    #[test]
    fn an_event_over_the_cap_is_skipped_and_the_next_one_kept(
        small in line(),
        big_len in 0usize..200,
        cap in 8usize..64,
        cuts in vec(any::<Index>(), 0..16),
    ) {
        let small = String::from_utf8_lossy(&small).replace(['\r', '\n'], "");
        let big = format!("data: {}\n\n", "x".repeat(big_len));
        let body = format!("{big}data: {small}\n\n");
        let (events, overflowed) = frame(&partition(body.as_bytes(), &cuts), cap);
        let big_fits = big.len() - 2 <= cap;
        let small_fits = small.len() + 6 <= cap;
        prop_assert_eq!(overflowed, !big_fits || !small_fits);
        let mut want = Vec::new();
        if big_fits {
            want.push(("message".to_owned(), "x".repeat(big_len)));
        }
        if small_fits {
            want.push(("message".to_owned(), small));
        }
        prop_assert_eq!(events, want);
    }
}
