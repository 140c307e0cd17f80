//! The injected-usage filter over any stream: the same bytes in any frames reach the
//! client the same, and the filter only ever takes bytes out.
//! Input: [slicing seed: 8] [body...].
#![no_main]

use bytes::Bytes;
use futures_util::FutureExt;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use tollgate::proxy::inject::InjectedUsageFilter;
use tollgate_fuzz::{split, take};

fn filtered(frames: Vec<&[u8]>) -> Vec<u8> {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
        frames.into_iter().map(|f| Ok(Frame::data(Bytes::copy_from_slice(f)))).collect();
    let body = InjectedUsageFilter::new(StreamBody::new(futures_util::stream::iter(frames)));
    let collected = body.collect().now_or_never().expect("every frame is ready");
    match collected {
        Ok(c) => c.to_bytes().to_vec(),
        Err(never) => match never {},
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let seed = take::<8>(&mut data);
    let whole = filtered(vec![data]);
    assert_eq!(filtered(split(data, seed)), whole, "the framing changed what the client gets");
    assert!(whole.len() <= data.len(), "the filter added bytes");
});
