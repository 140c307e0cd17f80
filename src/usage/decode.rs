//! Incremental decompression of `Content-Encoding` (gzip, deflate, br, zstd) for the
//! meter only: the client gets the original bytes. Input is fed in small pieces and the
//! output drained after each, so a compression bomb cannot balloon memory.

use std::io::Write;

/// Compressed bytes fed per step; bounds the output produced before it is drained.
const STEP: usize = 1024;

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Inner {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Inner::Gzip(d) => d.write_all(bytes),
            Inner::Deflate(d) => d.write_all(bytes),
            Inner::Brotli(d) => d.write_all(bytes),
            Inner::Zstd(d) => d.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Inner::Gzip(d) => d.flush(),
            Inner::Deflate(d) => d.flush(),
            Inner::Brotli(d) => d.flush(),
            Inner::Zstd(d) => d.flush(),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Deflate(d) => d.get_mut(),
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        }
    }
}

/// Turns compressed body slices into plain slices for the meter.
pub struct Decompressor {
    inner: Inner,
    failed: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor").field("failed", &self.failed).finish()
    }
}

impl Decompressor {
    /// A decoder for a `Content-Encoding` value; `None` for identity or unknown codings.
    pub fn for_encoding(encoding: &str) -> Option<Decompressor> {
        let inner = match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Inner::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            "deflate" => Inner::Deflate(flate2::write::ZlibDecoder::new(Vec::new())),
            "br" => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            "zstd" => Inner::Zstd(Box::new(zstd::stream::write::Decoder::new(Vec::new()).ok()?)),
            _ => return None,
        };
        Some(Decompressor { inner, failed: false })
    }

    /// Decodes `bytes`, handing every plain piece to `sink`.
    pub fn feed(&mut self, bytes: &[u8], sink: &mut dyn FnMut(&[u8])) {
        for piece in bytes.chunks(STEP) {
            if self.failed {
                return;
            }
            if let Err(e) = self.inner.write_all(piece) {
                tracing::warn!(error = %e, "cannot decode compressed response for metering; usage unknown");
                self.failed = true;
                return;
            }
            self.drain(sink);
        }
    }

    /// Flushes what the decoder still holds at the end of the body.
    pub fn finish(mut self, sink: &mut dyn FnMut(&[u8])) {
        if !self.failed && self.inner.flush().is_ok() {
            self.drain(sink);
        }
    }

    fn drain(&mut self, sink: &mut dyn FnMut(&[u8])) {
        let out = self.inner.output();
        if !out.is_empty() {
            sink(out);
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_slices(encoding: &str, compressed: &[u8], slice: usize) -> Vec<u8> {
        let mut d = Decompressor::for_encoding(encoding).unwrap();
        let mut out = Vec::new();
        for part in compressed.chunks(slice) {
            d.feed(part, &mut |p| out.extend_from_slice(p));
        }
        d.finish(&mut |p| out.extend_from_slice(p));
        out
    }

    #[test]
    fn every_coding_decodes_in_any_slicing() {
        let plain: Vec<u8> = b"data: {\"usage\":{\"prompt_tokens\":12}}\n\n".repeat(500);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&plain).unwrap();
        let zl = zl.finish().unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&plain).unwrap();
        }
        let zs = zstd::stream::encode_all(&plain[..], 3).unwrap();
        for (enc, data) in [("gzip", &gz), ("deflate", &zl), ("br", &br), ("zstd", &zs)] {
            for slice in [1, 7, 100, 100_000] {
                assert_eq!(decode_in_slices(enc, data, slice), plain, "{enc} in slices of {slice}");
            }
        }
    }

    #[test]
    fn identity_and_unknown_codings_are_not_decoded() {
        assert!(Decompressor::for_encoding("identity").is_none());
        assert!(Decompressor::for_encoding("compress").is_none());
    }

    #[test]
    fn garbage_stops_decoding_without_panicking() {
        let out = decode_in_slices("gzip", b"this is not gzip at all", 3);
        assert!(out.is_empty());
    }
}
