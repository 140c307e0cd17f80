//! The meter, every decoder: any bytes, streamed or not, in any slicing (and through
//! `feed` or `feed_bytes`) settle to the same `Metered` as in one piece, and a complete
//! report always carries usage.
//! Input: [api (low 3 bits), event stream (bit 3), status (bits 4-5)] [cap (< 64: x4
//! bytes, else 1 MiB)] [slicing seed: 8] [body...].
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tollgate::usage::{Meter, Metered};
use tollgate_fuzz::{split, take, APIS};

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let [select, cap] = take::<2>(&mut data);
    let api = APIS[usize::from(select & 7)];
    let sse = select & 8 != 0;
    let status = [200, 201, 429, 500][usize::from(select >> 4 & 3)];
    let cap = if cap < 64 { usize::from(cap) * 4 } else { 1 << 20 };
    let seed = take::<8>(&mut data);
    let run = |slices: &[&[u8]], by_frame: bool| -> Metered {
        let mut meter = Meter::new(api, status, sse, cap);
        for (i, s) in slices.iter().enumerate() {
            if by_frame && i % 2 == 0 {
                meter.feed_bytes(&Bytes::copy_from_slice(s));
            } else {
                meter.feed(s);
            }
        }
        meter.finish()
    };
    let whole = run(&[data], false);
    let sliced = run(&split(data, seed), seed[0] & 1 == 1);
    assert_eq!(whole, sliced, "the slicing changed what was metered");
    assert!(!whole.complete || whole.usage.is_some(), "complete without usage");
    assert!(whole.upstream_error || (200..300).contains(&status), "an error status is an upstream error");
    assert!(sse || whole.events == 0, "events counted in a JSON body");
});
