//! Lenient JSON building blocks shared by the provider decoders.
//!
//! Provider payloads change shape without notice. A field of an unexpected type (a float token
//! count, a numeric model name, a string where an object was) must cost that field only, never the
//! whole payload, so the decoders' structs are made of these types, which turn anything they
//! do not expect into `None` instead of failing. Unknown keys are skipped by serde without
//! building values.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A token count: a non-negative JSON integer, anything else reads as `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

/// A JSON string, anything else reads as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Option<String>);

/// A JSON string borrowed from the input when it has no escapes (no allocation), anything
/// else reads as `None`: for tags such as an item's `type`, compared and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl Str<'_> {
    /// Whether the string is exactly `want`.
    pub fn is(&self, want: &str) -> bool {
        self.0.as_deref() == Some(want)
    }
}

/// A JSON object decoded as `T`; anything else reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maybe<T>(pub Option<T>);

impl<T> Default for Maybe<T> {
    fn default() -> Self {
        Maybe(None)
    }
}

/// Any JSON value other than `null` (e.g. an `error` member whose shape does not matter).
pub type Present = Option<IgnoredAny>;

/// Parses `bytes` as `T`, or `None` when it is not JSON of a compatible shape.
pub fn parse<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// Whether `data` may hold `"key": <non-null>`; a cheap pre-filter, false positives allowed.
///
/// Escaped quotes inside JSON strings are preceded by a backslash, so a literal `"key"` token in
/// generated text cannot produce a false negative, only (harmless) extra parsing.
pub fn has_non_null(data: &[u8], key: &Finder<'_>) -> bool {
    let mut rest = data;
    // SIMD substring search with a prebuilt searcher: this runs on every streamed chunk.
    while let Some(at) = key.find(rest) {
        let after = &rest[at + key.needle().len()..];
        let mut tail = after.iter().skip_while(|b| b.is_ascii_whitespace());
        if tail.next() == Some(&b':') && tail.find(|b| !b.is_ascii_whitespace()) != Some(&b'n') {
            return true;
        }
        rest = after;
    }
    false
}

/// The `"usage"` key, as a searcher built once (building one per event cost more than
/// the search itself).
pub static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""usage""#));

/// The `"error"` key, likewise.
pub static ERROR_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(br#""error""#));

/// Drains a container the caller has no use for.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Visitor methods shared by `Count`, `Text` and `Str` for the JSON types they ignore.
macro_rules! ignore_other_types {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| Default::default())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map).map(|()| Default::default())
        }
    };
}

struct CountVisitor;

impl<'de> Visitor<'de> for CountVisitor {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
        Ok(Count(Some(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
        Ok(Count(u64::try_from(v).ok()))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
        Ok(Count(None))
    }

    ignore_other_types!();
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CountVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(Some(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(Some(v)))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text, E> {
        Ok(Text(None))
    }

    ignore_other_types!();
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct StrVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Str<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
        Ok(Str(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
        Ok(Str(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Str<'a>, E> {
        Ok(Str(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Str<'a>, E> {
        Ok(Str(None))
    }

    ignore_other_types!();
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor(PhantomData))
    }
}

struct MaybeVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MaybeVisitor<T> {
    type Value = Maybe<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Maybe<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|v| Maybe(Some(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Maybe<T>, A::Error> {
        drain_seq(seq).map(|()| Maybe(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Maybe<T>, E> {
        Ok(Maybe(None))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MaybeVisitor(PhantomData))
    }
}

/// What a [`Folded`] array accumulates: each object element decoded as `Item`, added in order.
pub trait Fold<'de>: Default {
    /// The shape of one element.
    type Item: Deserialize<'de>;
    /// Takes one element into the running result.
    fn add(&mut self, item: Self::Item);
}

/// A JSON array folded element by element into `F` without building it (`None` when the
/// value is not an array); elements that are not objects of the right shape are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded<F>(pub Option<F>);

impl<F> Default for Folded<F> {
    fn default() -> Self {
        Folded(None)
    }
}

struct FoldedVisitor<F>(PhantomData<F>);

impl<'de, F: Fold<'de>> Visitor<'de> for FoldedVisitor<F> {
    type Value = Folded<F>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Folded<F>, A::Error> {
        let mut acc = F::default();
        while let Some(item) = seq.next_element::<Maybe<F::Item>>()? {
            if let Some(item) = item.0 {
                acc.add(item);
            }
        }
        Ok(Folded(Some(acc)))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Folded<F>, E> {
        Ok(Folded(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Folded<F>, A::Error> {
        drain_map(map).map(|()| Folded(None))
    }
}

impl<'de, F: Fold<'de>> Deserialize<'de> for Folded<F> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FoldedVisitor(PhantomData))
    }
}

/// A JSON array whose object elements decode as `T`; other elements and non-arrays are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Maybe<T>>()? {
            items.extend(item.0);
        }
        Ok(List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<List<T>, A::Error> {
        drain_map(map).map(|()| List::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<List<T>, E> {
        Ok(List::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<List<T>, E> {
        Ok(List::default())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Probe {
        n: Count,
        s: Text,
        o: Maybe<Inner>,
        l: List<Inner>,
    }

    #[derive(Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Inner {
        k: Count,
    }

    #[test]
    fn wrong_types_cost_only_their_field() {
        let p: Probe =
            parse(br#"{"n":1.5,"s":7,"o":"x","l":{"k":1},"z":[1,{"a":null}]}"#).unwrap_or_default();
        assert_eq!((p.n, p.s, p.o, p.l), (Count(None), Text(None), Maybe(None), List(vec![])));
        let p: Probe =
            parse(br#"{"n":-3,"s":"m","o":{"k":2},"l":[{"k":1},3,null,{"k":"x"}]}"#).unwrap_or_default();
        assert_eq!(p.n, Count(None));
        assert_eq!(p.s, Text(Some("m".into())));
        assert_eq!(p.o, Maybe(Some(Inner { k: Count(Some(2)) })));
        assert_eq!(p.l.0, vec![Inner { k: Count(Some(1)) }, Inner { k: Count(None) }]);
    }

    #[test]
    fn str_borrows_plain_strings_and_reads_other_types_as_none() {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Tags<'a> {
            #[serde(borrow)]
            a: Str<'a>,
            #[serde(borrow)]
            b: Str<'a>,
            #[serde(borrow)]
            c: Str<'a>,
        }
        let t: Tags = parse(br#"{"a":"AUDIO","b":"\u0041UDIO","c":{"x":[1]}}"#).unwrap_or_default();
        assert!(matches!(t.a.0, Some(Cow::Borrowed("AUDIO"))));
        assert!(t.b.is("AUDIO") && matches!(t.b.0, Some(Cow::Owned(_))));
        assert_eq!(t.c, Str(None));
        assert!(!Str(None).is(""));
    }

    #[test]
    fn folded_arrays_skip_odd_elements_and_non_arrays_read_as_none() {
        #[derive(Default, Debug, PartialEq)]
        struct Sum(u64);
        impl Fold<'_> for Sum {
            type Item = Inner;
            fn add(&mut self, item: Inner) {
                self.0 += item.k.0.unwrap_or(0);
            }
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Holder {
            f: Folded<Sum>,
        }
        let h: Holder = parse(br#"{"f":[{"k":2},7,null,"x",[1],{"k":"3"},{"k":5}]}"#).unwrap_or_default();
        assert_eq!(h.f, Folded(Some(Sum(7))));
        for odd in [&br#"{"f":{"k":2}}"#[..], br#"{"f":"x"}"#, br#"{"f":null}"#, b"{}"] {
            let h: Holder = parse(odd).unwrap_or_default();
            assert_eq!(h.f, Folded(None));
        }
    }

    #[test]
    fn non_null_prefilter() {
        assert!(!has_non_null(br#"{"usage":null,"x":1}"#, &USAGE_KEY));
        assert!(!has_non_null(br#"{"usage" :  null}"#, &USAGE_KEY));
        assert!(has_non_null(br#"{"usage":null,"x":{"usage": {"a":1}}}"#, &USAGE_KEY));
        assert!(!has_non_null(br#"{"text":"the \"usage\": 3"}"#, &USAGE_KEY));
        assert!(!has_non_null(b"{}", &USAGE_KEY));
    }
}
