//! The SSE framer: any bytes in any slicing give the same events and overflow flag as the
//! same bytes in one piece, and no dispatched event's data is over the cap.
//! Input: [cap (< 128: that many bytes, else 64 KiB)] [slicing seed: 8] [body...].
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::usage::sse::Framer;
use tollgate_fuzz::{split, take};

type Events = Vec<(String, String)>;

fn frame(slices: &[&[u8]], cap: usize) -> (Events, bool) {
    let mut framer = Framer::new(cap);
    let mut out = Vec::new();
    for s in slices {
        framer.feed(s, &mut |e| out.push((e.name.to_owned(), e.data.to_owned())));
    }
    (out, framer.overflowed())
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [cap] = take::<1>(&mut data);
    let cap = if cap < 128 { usize::from(cap) } else { 64 << 10 };
    let seed = take::<8>(&mut data);
    let whole = frame(&[data], cap);
    let sliced = frame(&split(data, seed), cap);
    assert_eq!(whole, sliced, "the slicing changed the events");
    for (_, event_data) in &whole.0 {
        // Lossy decoding may grow invalid bytes (1 -> 3), so compare what it came from.
        let raw_len =
            event_data.chars().map(|c| if c == '\u{fffd}' { 1 } else { c.len_utf8() }).sum::<usize>();
        assert!(raw_len <= cap, "an event over the cap was dispatched");
    }
});
