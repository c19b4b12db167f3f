//! JSON comparison for round-trip checks, and the reader the fast paths use.

use serde_json::Value;

/// The length of the longest prefix of `bytes` that a JSON string can hold as is: up to
/// the first `"`, `\\` or control character (what ends a string, starts an escape, or is
/// not allowed unescaped).
///
/// Most strings of an audio event are short (keys, ids): the first 32 bytes are tested
/// eight at a time in a `u64`, without a call. A 20 ms delta is 1,280 base64 characters:
/// past those 32 bytes, `memchr2` finds the quote (SIMD, chosen at run time), then a
/// minimum over what lies before it (vectorized) says whether a control character is there.
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    let (words, _) = bytes.as_chunks::<8>();
    let short = words.len().min(4);
    for (index, word) in words[..short].iter().enumerate() {
        let found = special_bytes(u64::from_le_bytes(*word));
        if found != 0 {
            return index * 8 + (found.trailing_zeros() / 8) as usize;
        }
    }
    let start = short * 8;
    let rest = &bytes[start..];
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let head = &rest[..end];
    // A minimum is one vector instruction per 16 bytes; only a string that has a control
    // character looks for it.
    if head.iter().fold(u8::MAX, |low, &b| low.min(b)) < 0x20 {
        return start + head.iter().position(|&b| b < 0x20).unwrap_or(end);
    }
    start + end
}

/// The high bit of each byte of `word` that is `"`, `\\` or below 0x20. Exact for the
/// lowest such byte (a borrow only ever flags bytes above a true one), which is all
/// [`plain_len`] reads.
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (zero(quote) | zero(backslash) | control) & HIGH
}

/// A reader of compact JSON (no whitespace between tokens, strings without escapes: what
/// servers write) for the hot events' fast paths. It answers `None` at anything else, and
/// the caller then parses with serde, which reads everything: so a fast path can only be
/// faster, never different.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Compact<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// Skips `literal`, which must come next.
    pub(crate) fn literal(&mut self, literal: &str) -> Option<()> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        rest.starts_with(literal.as_bytes()).then(|| {
            self.pos += literal.len();
        })
    }

    /// The next byte, consumed.
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let byte = *self.text.as_bytes().get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    /// A string without escapes, `"…"`: its contents.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        if rest.first() != Some(&b'"') {
            return None;
        }
        let len = plain_len(&rest[1..]);
        if rest.get(1 + len) != Some(&b'"') {
            return None;
        }
        // Both ends are ASCII quotes, so both are character boundaries.
        let contents = self.text.get(self.pos + 1..self.pos + 1 + len)?;
        self.pos += len + 2;
        Some(contents)
    }

    /// A non-negative integer that fits a `u32`, as JSON writes it (no leading zero, no
    /// fraction or exponent: those are left to serde).
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let rest = self.text.as_bytes().get(self.pos..)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 || (digits > 1 && rest[0] == b'0') {
            return None;
        }
        if matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = rest[..digits]
            .iter()
            .fold(0_u32, |n, &b| n * 10 + u32::from(b - b'0'));
        self.pos += digits;
        Some(value)
    }

    /// Whether only JSON whitespace is left.
    pub(crate) fn at_end(&self) -> bool {
        self.text.as_bytes().get(self.pos..).is_some_and(|rest| {
            rest.iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        })
    }
}

/// Sets a field read by a fast path once: a second one is `None` (serde refuses it).
pub(crate) fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// Whether two JSON values are equal, with key order ignored (as `serde_json` does) and
/// numbers compared as numbers: `1`, `1.0` and `1e0` are equal, as they are to every JSON
/// reader. (`serde_json::Value`'s own `==` tells `1` from `1.0`.)
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_len_stops_at_what_a_string_cannot_hold_as_is() {
        for stop in [b'"', b'\\', b'\n', 0, 0x1f] {
            for at in [0, 1, 31, 32, 33, 63, 64, 100] {
                let mut bytes = vec![b'A'; 130];
                bytes[at] = stop;
                bytes[at + 5] = b'"';
                assert_eq!(plain_len(&bytes), at, "{stop:#x} at {at}");
            }
        }
        assert_eq!(plain_len(&[b'A'; 70]), 70);
        // Every length around the word and short-scan boundaries, every position.
        for len in 0..80 {
            for at in 0..=len {
                let mut bytes = vec![0x7e_u8; len];
                if at < len {
                    bytes[at] = b'"';
                }
                assert_eq!(plain_len(&bytes), at, "len {len}, quote at {at}");
            }
        }
        // Bytes just beside the special ones are plain; a borrow never hides the first.
        for b in [0x20_u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa0, 0xff] {
            assert_eq!(
                special_bytes(u64::from(b) * 0x0101_0101_0101_0101),
                0,
                "{b:#x}"
            );
        }
        let word = u64::from_le_bytes([b'a', 0, b'"', 0x1f, b'\\', 1, 0, 0xff]);
        assert_eq!(special_bytes(word).trailing_zeros() / 8, 1);
        assert_eq!(plain_len("é€ \u{7f}".as_bytes()), "é€ \u{7f}".len());
        assert_eq!(plain_len(b""), 0);
    }

    #[test]
    fn compact_reads_plain_tokens_and_refuses_the_rest() {
        let mut c = Compact::new(r#"{"a":"xy","n":12}  "#);
        c.literal("{").unwrap();
        assert_eq!(c.string(), Some("a"));
        assert_eq!(c.byte(), Some(b':'));
        assert_eq!(c.string(), Some("xy"));
        c.literal(",").unwrap();
        assert_eq!(c.string(), Some("n"));
        c.literal(":").unwrap();
        assert_eq!(c.u32(), Some(12));
        assert_eq!(c.byte(), Some(b'}'));
        assert!(c.at_end());
        for refused in [r#""a\"b""#, "\"ab", "\"a\nb\"", "x"] {
            assert_eq!(Compact::new(refused).string(), None, "{refused}");
        }
        for refused in ["01", "1.0", "1e3", "-1", "", "4294967296", "1234567890"] {
            assert_eq!(Compact::new(refused).u32(), None, "{refused}");
        }
        assert_eq!(Compact::new("0,").u32(), Some(0));
        assert_eq!(Compact::new("999999999}").u32(), Some(999_999_999));
        assert!(Compact::new(r#"{"a""#).literal("{\"b").is_none());
        let mut once_only = None;
        assert!(once(&mut once_only, 1).is_some());
        assert!(once(&mut once_only, 2).is_none());
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_equal(
            &json!({"a": 1, "b": [60]}),
            &json!({"b": [60.0], "a": 1.0})
        ));
        assert!(!json_equal(&json!(1), &json!(1.5)));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!json_equal(&json!("1"), &json!(1)));
    }
}

/// The fast paths of `response.output_audio.delta` and `input_audio_buffer.append` against
/// the general ones: whenever a fast path answers, it answers what serde does; and it does
/// answer for the shape servers and our encoder write.
#[cfg(test)]
mod fast_paths {
    use proptest::prelude::*;

    use crate::client::append_fast;
    use crate::server::{AudioDelta, audio_delta_fast};
    use crate::tagged::from_str_untagged;
    use crate::{Base64Audio, ClientEvent, Extra, InputAudioBufferAppend, ServerEvent};

    fn general(json: &str) -> Result<ServerEvent, String> {
        from_str_untagged::<AudioDelta>(json)
            .map(ServerEvent::ResponseOutputAudioDelta)
            .map_err(|e| e.to_string())
    }

    const DELTA: &str = r#"{"type":"response.output_audio.delta","event_id":"event_1","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":2,"delta":"AAD/fw==","obfuscation":"aLxx"}"#;

    #[test]
    fn the_common_shape_takes_the_fast_path() {
        let fast = audio_delta_fast(DELTA).expect("the fast path reads the service's shape");
        assert_eq!(Ok(fast.clone()), general(DELTA));
        let ServerEvent::ResponseOutputAudioDelta(delta) = fast else {
            unreachable!()
        };
        assert_eq!(delta.delta.decode_pcm16().unwrap(), [0, i16::MAX]);
        assert_eq!(delta.content_index, 2);
        assert_eq!(delta.obfuscation.as_deref(), Some("aLxx"));
        // And `from_json` gives the same event, round-tripping to the same JSON.
        let parsed = ServerEvent::from_json(DELTA).unwrap();
        assert_eq!(parsed.to_json(), DELTA);
    }

    #[test]
    fn other_shapes_are_left_to_serde() {
        for other in [
            // whitespace, an escape, an extra field, a repeated field, a second type,
            // a missing field, a null, other numbers, trailing text
            DELTA.replace(",\"item_id\"", ", \"item_id\""),
            DELTA.replace("event_1", "event\\u0031"),
            DELTA.replace("\"obfuscation\"", "\"x\":1,\"obfuscation\""),
            DELTA.replace("\"obfuscation\":\"aLxx\"", "\"item_id\":\"item_2\""),
            DELTA.replace("\"obfuscation\":\"aLxx\"", "\"type\":\"x\""),
            DELTA
                .replace(",\"obfuscation\":\"aLxx\"", "")
                .replace(",\"item_id\":\"item_1\"", ""),
            DELTA.replace("\"aLxx\"", "null"),
            DELTA.replace(":0,", ":0.0,"),
            DELTA.replace(":0,", ":-0,"),
            DELTA.replace(":2,", ":4294967296,"),
            format!("{DELTA}x"),
            DELTA.replace("response.output_audio.delta", "response.output_audio.done"),
        ] {
            assert_eq!(audio_delta_fast(&other), None, "{other}");
        }
        // Trailing whitespace is still the common shape.
        assert!(audio_delta_fast(&format!("{DELTA}\n")).is_some());
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9+/=_]{0,12}",
            Just("a\\\"b".to_owned()),
            Just("\\u00e9".to_owned()),
            Just("é".to_owned()),
            Just("\\n".to_owned()),
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            piece().prop_map(|s| format!("\"{s}\"")),
            Just("0".to_owned()),
            Just("7".to_owned()),
            Just("01".to_owned()),
            Just("1.5".to_owned()),
            Just("-1".to_owned()),
            Just("4294967295".to_owned()),
            Just("1e2".to_owned()),
            Just("null".to_owned()),
            Just("[]".to_owned()),
            Just("{\"type\":\"x\"}".to_owned()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "event_id",
            "response_id",
            "item_id",
            "output_index",
            "content_index",
            "delta",
            "obfuscation",
            "type",
            "other",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn the_fast_path_never_disagrees_with_serde(
            fields in prop::collection::vec((key(), value(), prop::bool::ANY), 0..10),
        ) {
            let mut json = r#"{"type":"response.output_audio.delta""#.to_owned();
            for (key, value, space) in &fields {
                json.push_str(if *space { ", " } else { "," });
                json.push_str(&format!("\"{key}\":{value}"));
            }
            json.push('}');
            if let Some(fast) = audio_delta_fast(&json) {
                prop_assert_eq!(Ok(fast), general(&json), "{}", json);
            }
        }

        #[test]
        fn well_formed_deltas_take_the_fast_path(
            ids in prop::collection::vec("[A-Za-z0-9_]{0,24}", 3),
            indexes in (0_u32..1_000_000, 0_u32..1_000_000),
            samples in prop::collection::vec(any::<i16>(), 0..600),
            obfuscation in prop::option::of("[A-Za-z0-9]{0,16}"),
            order in Just((0..7).collect::<Vec<usize>>()).prop_shuffle(),
        ) {
            let audio = Base64Audio::from_pcm16(&samples);
            let mut parts = vec![
                format!("\"event_id\":\"{}\"", ids[0]),
                format!("\"response_id\":\"{}\"", ids[1]),
                format!("\"item_id\":\"{}\"", ids[2]),
                format!("\"output_index\":{}", indexes.0),
                format!("\"content_index\":{}", indexes.1),
                format!("\"delta\":\"{}\"", audio.as_str()),
                obfuscation.as_ref().map(|o| format!("\"obfuscation\":\"{o}\"")).unwrap_or_default(),
            ];
            parts = order.iter().map(|&i| std::mem::take(&mut parts[i])).filter(|p| !p.is_empty()).collect();
            let json = format!(r#"{{"type":"response.output_audio.delta",{}}}"#, parts.join(","));
            let fast = audio_delta_fast(&json);
            prop_assert!(fast.is_some(), "{}", json);
            let fast = fast.unwrap();
            prop_assert_eq!(Ok(fast.clone()), general(&json));
            let ServerEvent::ResponseOutputAudioDelta(delta) = fast else { unreachable!() };
            prop_assert_eq!(delta.delta.decode_pcm16().unwrap(), samples);
        }

        #[test]
        fn the_fast_append_writes_what_serde_writes(
            event_id in prop::option::of(prop_oneof!["[A-Za-z0-9_]{0,12}", ".{0,8}"]),
            audio in prop_oneof![
                prop::collection::vec(any::<i16>(), 0..600).prop_map(|s| Base64Audio::from_pcm16(&s)),
                ".{0,20}".prop_map(Base64Audio::from_base64),
            ],
            extra in prop::bool::ANY,
        ) {
            let mut append = InputAudioBufferAppend { event_id, audio, extra: Extra::default() };
            if extra {
                append.extra.insert("x", serde_json::json!([1, "\"q\""]));
            }
            let event = ClientEvent::InputAudioBufferAppend(append.clone());
            let serde = serde_json::to_string(&event).unwrap();
            match append_fast(&event) {
                Some(fast) => prop_assert_eq!(&fast, &serde),
                None => prop_assert!(
                    extra || append.audio.as_str().bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
                    "the fast path refused {}", serde
                ),
            }
            prop_assert_eq!(event.to_json(), serde);
        }
    }

    #[test]
    fn appends_of_samples_take_the_fast_path() {
        let event = ClientEvent::audio_append(&[0, 1, -1, i16::MIN]);
        let fast = append_fast(&event).expect("samples are plain base64");
        assert_eq!(fast, serde_json::to_string(&event).unwrap());
        let with_id = event.with_event_id("evt \"1\"");
        assert_eq!(
            append_fast(&with_id).unwrap(),
            serde_json::to_string(&with_id).unwrap()
        );
        assert!(append_fast(&ClientEvent::audio_commit()).is_none());
    }
}
