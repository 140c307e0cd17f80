//! Helpers shared by the fuzz targets: how an input picks its options and its slicing.

use tollgate::usage::Api;

/// Every metered API.
pub const APIS: [Api; 8] = [
    Api::ChatCompletions,
    Api::Completions,
    Api::Responses,
    Api::Embeddings,
    Api::Messages,
    Api::GenerateContent,
    Api::StreamGenerateContent,
    Api::EmbedContent,
];

/// Takes `N` bytes off the front of `data` (zeros when it is shorter).
pub fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

/// Splits `data` into slices whose lengths a xorshift seeded by `seed` picks: up to 256
/// bytes each, empty slices included, so one input is also its own re-chunking.
pub fn split(data: &[u8], seed: [u8; 8]) -> Vec<&[u8]> {
    let seed = u64::from_le_bytes(seed);
    let max = 1 + (seed >> 56) as usize;
    let mut state = seed | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % (max as u64 + 1)) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}
