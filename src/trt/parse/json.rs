//! Lenient JSON for trtexec's hand-written exports.
//!
//! trtexec's `--exportTimes/--exportProfile/--exportOutput` writers stream text with `<<`: names are not
//! escaped and floats may print as `nan`/`inf` (tensorrt.md §2.6). Strict JSON is tried first so that
//! well-formed files keep serde's exact line/column in errors; only when that fails is the text repaired
//! and parsed again.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use std::fmt;

use super::{ExportKind, ParseError};

/// Parses `text` as JSON of type `T`, repairing trtexec's known deviations when strict parsing fails.
/// On failure the error reports the strict parser's position, which is where the file is really wrong.
pub(crate) fn from_str_lenient<T: DeserializeOwned>(
    text: &str,
    kind: ExportKind,
    origin: &str,
) -> Result<T, ParseError> {
    let body = strip_preamble(text);
    match serde_json::from_str::<T>(body) {
        Ok(v) => Ok(v),
        // Repairs fix syntax only: they cannot help a document of the wrong shape, a truncated one, or
        // text that does not even open a JSON value.
        Err(strict) if !worth_repairing(&strict, body) => {
            Err(json_error(&strict, kind, origin, line_offset(text, body)))
        }
        Err(strict) => {
            let repaired = repair(body);
            match serde_json::from_str::<T>(&repaired) {
                Ok(v) => Ok(v),
                Err(_) => Err(json_error(&strict, kind, origin, line_offset(text, body))),
            }
        }
    }
}

/// Only syntax errors in something that opens a JSON value can be repaired.
pub(crate) fn worth_repairing(e: &serde_json::Error, body: &str) -> bool {
    e.classify() == serde_json::error::Category::Syntax && body.starts_with(['[', '{'])
}

/// Builds the typed error from a serde_json error; `skipped_lines` re-bases the line number on the
/// caller's original text when a preamble was skipped.
pub(crate) fn json_error(e: &serde_json::Error, kind: ExportKind, origin: &str, skipped_lines: usize) -> ParseError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the position is reported in our own fields instead.
    let message = match full.rfind(" at line ") {
        Some(i) => full.get(..i).unwrap_or(&full).to_string(),
        None => full,
    };
    ParseError::Json { origin: origin.to_string(), kind, line: e.line() + skipped_lines, column: e.column(), message }
}

fn line_offset(text: &str, body: &str) -> usize {
    let skipped = text.len().saturating_sub(body.len());
    text.get(..skipped).map_or(0, |p| p.matches('\n').count())
}

/// Skips a UTF-8 BOM, blank lines and leading `#` comment lines. Annotated copies of exports (such as the
/// collected samples, whose first line names their source) stay parseable without a separate cleaning step.
pub(crate) fn strip_preamble(text: &str) -> &str {
    let mut rest = text.strip_prefix('\u{feff}').unwrap_or(text);
    loop {
        let trimmed = rest.trim_start();
        if trimmed.starts_with('#') {
            rest = match trimmed.split_once('\n') {
                Some((_, after)) => after,
                None => "",
            };
        } else {
            return trimmed;
        }
    }
}

/// Rewrites trtexec's non-JSON into JSON:
/// - bare `nan`, `inf`, `infinity` (any case, optional sign) become the strings `"nan"`, `"inf"`, `"-inf"`,
///   which the lenient float deserializers below accept;
/// - inside strings: raw control characters are escaped, a backslash that starts no valid escape is
///   doubled, and a quote that is not followed by `,` `:` `}` `]` or the end is taken as part of the name.
pub(crate) fn repair(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            match c {
                '\\' => {
                    let next = chars.get(i + 1).copied();
                    match next {
                        Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => {
                            out.push('\\');
                            if let Some(n) = next {
                                out.push(n);
                            }
                            i += 2;
                            continue;
                        }
                        Some('u')
                            if chars.get(i + 2..i + 6).is_some_and(|h| h.iter().all(|d| d.is_ascii_hexdigit())) =>
                        {
                            out.push('\\');
                            i += 1;
                            continue;
                        }
                        _ => out.push_str("\\\\"),
                    }
                }
                '"' => {
                    if closes_string(&chars, i + 1) {
                        in_string = false;
                        out.push('"');
                    } else {
                        out.push_str("\\\"");
                    }
                }
                c if (c as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
                i += 1;
            }
            '-' | '+' if chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic()) => {
                let (word, end) = read_word(&chars, i + 1);
                match special_float(&word) {
                    Some("nan") => out.push_str("\"nan\""),
                    Some(_) if c == '-' => out.push_str("\"-inf\""),
                    Some(_) => out.push_str("\"inf\""),
                    None => {
                        out.push(c);
                        out.push_str(&word);
                    }
                }
                i = end;
            }
            c if c.is_ascii_alphabetic()
                && !out.chars().next_back().is_some_and(|p| p.is_ascii_alphanumeric() || p == '.') =>
            {
                let (word, end) = read_word(&chars, i);
                match special_float(&word) {
                    Some(s) => {
                        out.push('"');
                        out.push_str(s);
                        out.push('"');
                    }
                    None => out.push_str(&word),
                }
                i = end;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn read_word(chars: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while chars.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '(' || *c == ')') {
        end += 1;
    }
    (chars.get(start..end).unwrap_or(&[]).iter().collect(), end)
}

fn special_float(word: &str) -> Option<&'static str> {
    let w = word.to_ascii_lowercase();
    // glibc prints "-nan" and MSVC "nan(ind)"; both mean NaN.
    if w == "nan" || w.starts_with("nan(") {
        Some("nan")
    } else if w == "inf" || w == "infinity" {
        Some("inf")
    } else {
        None
    }
}

fn closes_string(chars: &[char], from: usize) -> bool {
    let mut j = from;
    while let Some(c) = chars.get(j) {
        if c.is_whitespace() {
            j += 1;
            continue;
        }
        return matches!(c, ',' | ':' | '}' | ']');
    }
    true
}

struct LenientF64Visitor;

impl<'de> Visitor<'de> for LenientF64Visitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or nan/inf as trtexec prints them")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_float_token(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
        // Boolean output tensors are dumped as 0/1 by some versions and true/false by others.
        Ok(if v { 1.0 } else { 0.0 })
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

/// A float as trtexec writes it: plain, scientific, `nan`, `-nan`, `inf`, `-inf` (any case).
pub(crate) fn parse_float_token(tok: &str) -> Option<f64> {
    let t = tok.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    match special_float(body) {
        Some("nan") => return Some(f64::NAN),
        Some(_) => return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY }),
        None => {}
    }
    // Rust's parser also accepts words such as "infinity" handled above; anything else must look numeric
    // so that tokens like "e5" or "." are rejected rather than silently read.
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse::<f64>().ok()
}

pub(crate) fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, nan/inf, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(LenientF64Visitor).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

pub(crate) fn de_vec_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    struct Item(f64);
    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
            d.deserialize_any(LenientF64Visitor).map(Item)
        }
    }
    let items: Vec<Item> = serde::Deserialize::deserialize(d)?;
    Ok(items.into_iter().map(|i| i.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_nan_inf_and_keeps_numbers() {
        let r = repair(r#"[1e-05, nan, -nan, inf, -inf, Infinity, 3, true, null]"#);
        assert_eq!(r, r#"[1e-05, "nan", "nan", "inf", "-inf", "inf", 3, true, null]"#);
    }

    #[test]
    fn repairs_unescaped_quote_and_backslash_in_names() {
        let r = repair("{ \"name\" : \"a\"b\\x\", \"t\" : 1 }");
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["name"], "a\"b\\x");
        assert_eq!(v["t"], 1);
    }

    #[test]
    fn keeps_valid_unicode_escapes() {
        let r = repair(r#"{"m": "[a]\u001e[b]"}"#);
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["m"], "[a]\u{1e}[b]");
    }

    #[test]
    fn float_tokens() {
        assert_eq!(parse_float_token("1.2e-05"), Some(1.2e-05));
        assert!(parse_float_token("-nan").unwrap().is_nan());
        assert_eq!(parse_float_token("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float_token("e5"), None);
        assert_eq!(parse_float_token(""), None);
        assert_eq!(parse_float_token("ms"), None);
    }

    #[test]
    fn preamble_is_skipped() {
        assert_eq!(strip_preamble("\u{feff}# source: x\n# more\n  [1]"), "[1]");
        assert_eq!(strip_preamble("# only a comment"), "");
    }
}
