//! Incremental `text/event-stream` framer: body bytes in, dispatched events out (WHATWG rules).
//!
//! The framer holds only the current partial line and the fields of the event being built, never
//! the stream. "Not enough bytes yet" is simply the state it is left in between calls to
//! [`Framer::feed`]; an event still open when the body ends is dropped by not being dispatched.

use std::borrow::Cow;

/// One dispatched server-sent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` field, or `"message"` when the event named none.
    pub name: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Incremental event-stream parser with a bound on the bytes it buffers.
#[derive(Debug)]
pub struct Framer {
    cap: usize,
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// Data of the event being built, lines already joined with `\n`.
    data: Vec<u8>,
    /// `event:` field of the event being built.
    name: Vec<u8>,
    /// Whether a `data` field was seen; an event without one is not dispatched.
    has_data: bool,
    /// The previous byte was a CR: an LF right after it (even in the next slice) ends no new line.
    after_cr: bool,
    /// Skipping an event that outgrew `cap` until the blank line that ends it.
    skipping: bool,
    /// While skipping: whether the current line has any byte (a blank line ends the skip).
    skip_line_nonempty: bool,
    overflowed: bool,
}

impl Framer {
    /// A framer that buffers at most `cap` bytes of one event (line + data + name).
    pub fn new(cap: usize) -> Framer {
        Framer {
            cap,
            line: Vec::new(),
            data: Vec::new(),
            name: Vec::new(),
            has_data: false,
            after_cr: false,
            skipping: false,
            skip_line_nonempty: false,
            overflowed: false,
        }
    }

    /// Whether an event ever outgrew the cap (that event was skipped, not dispatched).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Consumes the next slice of the body, calling `on_event` for every event it completes.
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(Event<'_>)) {
        // An empty slice says nothing about the byte after a trailing CR, so keep waiting.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) else {
                self.push_partial(bytes);
                return;
            };
            let line = &bytes[..end];
            let crlf = bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n');
            self.after_cr = bytes[end] == b'\r' && end + 1 == bytes.len();
            bytes = &bytes[end + if crlf { 2 } else { 1 }..];
            if self.line.is_empty() {
                // The whole line is in this slice: read it where it is, no copy.
                self.end_line(line, on_event);
            } else {
                self.push_partial(line);
                let buffered = std::mem::take(&mut self.line);
                self.end_line(&buffered, on_event);
                // Hand the allocation back so steady streaming does not reallocate.
                self.line = buffered;
                self.line.clear();
            }
        }
    }

    /// Appends bytes of a line that has not ended yet, or counts them when skipping.
    fn push_partial(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        if self.skipping {
            self.skip_line_nonempty = true;
            return;
        }
        let held = self.line.len() + self.data.len() + self.name.len();
        if held + part.len() > self.cap {
            self.start_skipping();
            return;
        }
        self.line.extend_from_slice(part);
    }

    /// Drops the event being built: it cannot fit, so it is skipped to its end.
    fn start_skipping(&mut self) {
        self.overflowed = true;
        self.skipping = true;
        self.skip_line_nonempty = true;
        self.line.clear();
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.name.clear();
        self.has_data = false;
    }

    /// Handles a complete line (without its line end).
    fn end_line(&mut self, line: &[u8], on_event: &mut dyn FnMut(Event<'_>)) {
        if !self.skipping && self.data.len() + self.name.len() + line.len() > self.cap {
            self.start_skipping();
        }
        if self.skipping {
            // Resynchronise at the blank line that ends the oversized event.
            if !line.is_empty() {
                self.skip_line_nonempty = true;
            }
            if !self.skip_line_nonempty {
                self.skipping = false;
            }
            self.skip_line_nonempty = false;
            return;
        }
        if line.is_empty() {
            self.dispatch(on_event);
        } else {
            self.field(line);
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // comment, e.g. OpenRouter's `: OPENROUTER PROCESSING` keep-alive
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                // The line already sits inside the cap, and data + line never exceeds it.
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            _ => {} // `id`, `retry` and unknown fields do not matter for metering
        }
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(Event<'_>)) {
        if self.has_data {
            let data = text(&self.data);
            let name: Cow<'_, str> =
                if self.name.is_empty() { Cow::Borrowed("message") } else { text(&self.name) };
            on_event(Event { name: &name, data: &data });
        }
        self.reset_event();
    }
}

/// The bytes as text; invalid UTF-8 (never seen from a provider) is replaced, not fatal.
/// `from_utf8` first: its ASCII fast path is several times quicker than the lossy scan.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(slices: &[&[u8]], cap: usize) -> (Vec<(String, String)>, bool) {
        let mut framer = Framer::new(cap);
        let mut out = Vec::new();
        for s in slices {
            framer.feed(s, &mut |e| out.push((e.name.to_owned(), e.data.to_owned())));
        }
        (out, framer.overflowed())
    }

    fn ev(name: &str, data: &str) -> (String, String) {
        (name.to_owned(), data.to_owned())
    }

    #[test]
    fn lf_crlf_and_cr_line_ends() {
        for body in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
            b"data: a\r\n\ndata: b\r\r\n",
        ] {
            assert_eq!(frame(&[body], 1024).0, vec![ev("message", "a"), ev("message", "b")]);
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        // Were the LF a second line end, the event would be dispatched early with only "a".
        let (out, _) = frame(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"], 1024);
        assert_eq!(out, vec![ev("message", "a\nb")]);
        let (out, _) = frame(&[b"data: a\r", b"", b"\n", b"\r\n"], 1024);
        assert_eq!(out, vec![ev("message", "a")]);
    }

    #[test]
    fn comments_are_ignored() {
        let (out, _) = frame(&[b": ping\n\n:x\ndata: a\n: mid\n\n"], 1024);
        assert_eq!(out, vec![ev("message", "a")]);
    }

    #[test]
    fn exactly_one_leading_space_is_stripped() {
        let (out, _) = frame(&[b"data:x\n\ndata: x\n\ndata:  x\n\n"], 1024);
        assert_eq!(out, vec![ev("message", "x"), ev("message", "x"), ev("message", " x")]);
    }

    #[test]
    fn multi_line_data_and_event_name() {
        let (out, _) = frame(&[b"event: delta\ndata: 1\ndata:\ndata: 3\nid: 7\n\n"], 1024);
        assert_eq!(out, vec![ev("delta", "1\n\n3")]);
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        // `data` alone is a data field with an empty value, so the event is dispatched.
        let (out, _) = frame(&[b"data\n\nevent\n\n"], 1024);
        assert_eq!(out, vec![ev("message", "")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        let (out, _) = frame(&[b"event: ping\n\n\n\nevent: x\ndata: y\n\n"], 1024);
        assert_eq!(out, vec![ev("x", "y")]);
    }

    #[test]
    fn unterminated_last_event_is_discarded() {
        let (out, _) = frame(&[b"data: a\n\ndata: {\"half\":", b" 1}\n"], 1024);
        assert_eq!(out, vec![ev("message", "a")]);
    }

    #[test]
    fn utf8_split_across_slices() {
        let body = "data: caf\u{e9} \u{2014}\n\n".as_bytes();
        for i in 0..body.len() {
            let (out, _) = frame(&[&body[..i], &body[i..]], 1024);
            assert_eq!(out, vec![ev("message", "caf\u{e9} \u{2014}")], "split at {i}");
        }
    }

    #[test]
    fn oversized_event_is_skipped_and_flagged() {
        let big = format!("data: {}\n\n", "x".repeat(100));
        let body = format!("data: a\n\n{big}data: b\n\n");
        let (out, overflowed) = frame(&[body.as_bytes()], 32);
        assert!(overflowed);
        assert_eq!(out, vec![ev("message", "a"), ev("message", "b")]);
        // Byte by byte the framer must neither grow past the cap nor lose the resync.
        let mut framer = Framer::new(32);
        let mut out = Vec::new();
        for b in body.as_bytes() {
            framer.feed(&[*b], &mut |e| out.push(e.data.to_owned()));
            assert!(framer.line.len() + framer.data.len() + framer.name.len() <= 32);
        }
        assert!(framer.overflowed());
        assert_eq!(out, vec!["a", "b"]);
    }

    #[test]
    fn many_data_lines_count_against_the_cap() {
        let body = "data: 0123456789\n".repeat(10) + "\n";
        let (out, overflowed) = frame(&[body.as_bytes()], 64);
        assert!(overflowed);
        assert!(out.is_empty());
    }
}
