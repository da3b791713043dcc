//! A YAML writer for JSON values that lays them out the way Go's `sigs.k8s.io/yaml.Marshal`
//! does (JSON, then `go.yaml.in/yaml/v2`), so the runner's output files have the bytes Capact's
//! Go runner writes.
//!
//! Rules followed, from `go.yaml.in/yaml/v2` v2.4 (`encode.go`, `emitterc.go`, `resolve.go`,
//! `sorter.go`):
//! - mapping keys are sorted with yaml.v2's "natural" order (non-letters before letters, runs of
//!   digits compared as numbers); indentation is two spaces; a sequence under a mapping key is
//!   not indented (`key:\n- a`); empty collections are written `{}` and `[]`;
//! - a string that would read back as another type (`true`, `yes`, `null`, `~`, `""`, `1`,
//!   `0x1f`, `1.5`, `.inf`, `2001-12-14`, `1:20`, `<<`) is double-quoted; a string plain YAML
//!   cannot carry (leading indicator, `: `, ` #`, surrounding spaces) is single-quoted; a string
//!   with a line break is a literal block (`|`, `|-` or `|+`), or double-quoted when a block
//!   cannot carry it;
//! - plain values are folded at a space once the line is longer than 80 columns, as yaml.v2
//!   does by default.
//!
//! Not reproduced: folding of quoted scalars longer than 80 columns, and keys longer than 128
//! characters (yaml.v2 writes those as complex keys).

use std::cmp::Ordering;

use serde_json::Value;

/// yaml.v2's preferred line width (`best_width`).
const BEST_WIDTH: usize = 80;

/// Writes `value` as a YAML document (no `---`), ending with a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        scalar => {
            write_inline(&mut out, scalar, 0, 0);
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| key_order(a, b));
    for key in keys {
        let value = &map[key];
        push_indent(out, indent);
        let k = key_text(key);
        out.push_str(&k);
        out.push(':');
        write_value(out, value, indent, indent + k.chars().count() + 1);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push('-');
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first key goes on the dash's line.
                let mut first = String::new();
                write_map(&mut first, m, indent + 2);
                out.push(' ');
                out.push_str(&first[indent + 2..]);
            }
            Value::Array(a) if !a.is_empty() => {
                let mut first = String::new();
                write_seq(&mut first, a, indent + 2);
                out.push(' ');
                out.push_str(&first[indent + 2..]);
            }
            scalar => write_inline_after(out, scalar, indent + 2, indent + 1),
        }
    }
}

/// Writes the value of a mapping entry whose key (and `:`) ends at `column`.
fn write_value(out: &mut String, value: &Value, indent: usize, column: usize) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, indent);
        }
        scalar => write_inline_after(out, scalar, indent + 2, column),
    }
}

/// Writes ` <scalar>\n` after an indicator ending at `column`; `indent` is the indentation of
/// continuation lines and block-scalar content.
fn write_inline_after(out: &mut String, scalar: &Value, indent: usize, column: usize) {
    out.push(' ');
    write_inline(out, scalar, indent, column + 1);
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

fn write_inline(out: &mut String, value: &Value, indent: usize, column: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::String(s) => write_string(out, s, indent, column),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// Numbers as yaml.v2 writes what `encoding/json` produced: integers as such, floats with Go's
/// `strconv.FormatFloat(f, 'g', -1, 64)` (`1e+06`, `0.5`), whole floats without a fraction.
fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    if f.is_nan() {
        return ".nan".into();
    }
    // encoding/json writes whole floats below 1e21 as integers, which yaml.v2 reads back as
    // integers.
    if f.fract() == 0.0 && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    go_format_g(f)
}

/// Go's `%g` with the shortest representation: exponent form when the exponent is < -4 or
/// >= 21 (as `encoding/json` chooses), with a sign and at least two exponent digits.
fn go_format_g(f: f64) -> String {
    let exp = if f == 0.0 {
        0
    } else {
        f.abs().log10().floor() as i32
    };
    if (-4..21).contains(&exp) {
        return format!("{f}");
    }
    let s = format!("{f:e}"); // e.g. 1e-7, 1.5e22
    let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", e.abs())
}

fn key_text(key: &str) -> String {
    match style_of(key, true) {
        Style::Plain => key.to_string(),
        Style::Single => single_quoted(key),
        Style::Double | Style::Literal => double_quoted(key),
    }
}

fn write_string(out: &mut String, s: &str, indent: usize, column: usize) {
    match style_of(s, false) {
        Style::Plain => write_plain(out, s, indent, column),
        Style::Single => out.push_str(&single_quoted(s)),
        Style::Double => out.push_str(&double_quoted(s)),
        Style::Literal => write_literal(out, s, indent),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn style_of(s: &str, simple_key: bool) -> Style {
    let special = s
        .chars()
        .any(|c| !is_printable(c) && c != '\n' || c == '\u{feff}');
    if special {
        return Style::Double;
    }
    if s.contains('\n') {
        // yaml.v2 picks a literal block; the emitter falls back to double quotes where a block
        // cannot hold the text (keys, a space before a break, leading spaces...).
        let space_break = s.contains(" \n");
        let leading_space = s.starts_with(' ');
        if simple_key || space_break || leading_space || s.ends_with(' ') {
            return Style::Double;
        }
        return Style::Literal;
    }
    if !resolves_to_string(s) {
        return Style::Double;
    }
    if plain_allowed(s) {
        Style::Plain
    } else {
        Style::Single
    }
}

fn is_printable(c: char) -> bool {
    matches!(c, '\t' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
        && c != '\u{feff}'
}

/// Whether yaml.v2's emitter may write `s` as a plain scalar in block context
/// (`yaml_emitter_analyze_scalar`).
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with('\t') || s.ends_with('\t') {
        return false;
    }
    let chars: Vec<char> = s.chars().collect();
    let blank_after = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ' || *c == '\t');
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => return false,
                '?' | ':' | '-' if blank_after(i) => return false,
                _ => {}
            }
        } else {
            match c {
                ':' if blank_after(i) => return false,
                '#' if chars[i - 1] == ' ' || chars[i - 1] == '\t' => return false,
                _ => {}
            }
        }
    }
    true
}

/// Whether yaml.v2 reads the plain scalar `s` back as a string (`resolve` in `resolve.go`).
pub fn resolves_to_string(s: &str) -> bool {
    const WORDS: [&str; 32] = [
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", "<<", ".inf",
    ];
    const MORE: [&str; 8] = [
        ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
    ];
    if WORDS.contains(&s) || MORE.contains(&s) {
        return false;
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => s.parse::<f64>().is_err() || !is_float_syntax(s),
        b'+' | b'-' | b'0'..=b'9' => {
            if is_timestamp(s) {
                return false;
            }
            let plain = s.replace('_', "");
            !(is_go_int(&plain) || is_float_syntax(&plain) || is_base60_float(s))
        }
        _ => true,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$` (yaml.v2's `yamlStyleFloat`).
fn is_float_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)` / `ParseUint` syntax: optional sign, then `0x`, `0o`,
/// `0b`, a leading-`0` octal, or decimal digits.
fn is_go_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = if let Some(r) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (r, 2)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    !digits.is_empty() && u128::from_str_radix(digits, radix).is_ok_and(|v| v <= u64::MAX as u128)
}

/// yaml.v2's `isBase60Float`: `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    if frac.is_some_and(|f| !f.chars().all(|c| c.is_ascii_digit() || c == '_')) {
        return false;
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or_default();
    if !head.starts_with(|c: char| c.is_ascii_digit())
        || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// Dates and times yaml.v2 reads as timestamps (`YYYY-M-D`, optionally followed by `T`, `t` or
/// a space and a time).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let rest = &s[5..];
    let (date, time) = match rest.find(['T', 't', ' ']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut d = date.split('-');
    let ok_num = |p: Option<&str>| {
        p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
    };
    if !(ok_num(d.next()) && ok_num(d.next()) && d.next().is_none()) {
        return false;
    }
    match time {
        None => true,
        Some(t) => {
            let hms: Vec<&str> = t.splitn(3, ':').collect();
            hms.len() == 3
                && ok_num(Some(hms[0]))
                && ok_num(Some(hms[1]))
                && hms[2].len() >= 2
                && hms[2][..2].bytes().all(|c| c.is_ascii_digit())
        }
    }
}

fn write_plain(out: &mut String, s: &str, indent: usize, mut column: usize) {
    let chars: Vec<char> = s.chars().collect();
    let mut prev_space = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            if !prev_space && column > BEST_WIDTH && !next_space {
                out.push('\n');
                push_indent(out, indent);
                column = indent;
            } else {
                out.push(' ');
                column += 1;
            }
            prev_space = true;
        } else {
            out.push(c);
            column += 1;
            prev_space = false;
        }
    }
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '\0' => q.push_str("\\0"),
            '\u{7}' => q.push_str("\\a"),
            '\u{8}' => q.push_str("\\b"),
            '\t' => q.push_str("\\t"),
            '\n' => q.push_str("\\n"),
            '\u{b}' => q.push_str("\\v"),
            '\u{c}' => q.push_str("\\f"),
            '\r' => q.push_str("\\r"),
            '\u{1b}' => q.push_str("\\e"),
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\u{85}' => q.push_str("\\N"),
            '\u{a0}' => q.push_str("\\_"),
            '\u{2028}' => q.push_str("\\L"),
            '\u{2029}' => q.push_str("\\P"),
            c if !is_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    q.push_str(&format!("\\x{n:02X}"));
                } else if n <= 0xffff {
                    q.push_str(&format!("\\u{n:04X}"));
                } else {
                    q.push_str(&format!("\\U{n:08X}"));
                }
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn write_literal(out: &mut String, s: &str, indent: usize) {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    out.push('|');
    out.push_str(chomp);
    out.push('\n');
    let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// yaml.v2's key order (`keyList.Less` in `sorter.go`) for string keys.
pub fn key_order(a: &str, b: &str) -> Ordering {
    if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn): (i64, i64) = (0, 0);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_like_sigs_yaml() {
        let v = json!({
            "value": {"name": "rel", "namespace": "ns", "chart": {"name": "c", "version": "0.1.0", "repo": "http://127.0.0.1:8080/charts"}},
            "backend": null,
        });
        assert_eq!(
            to_string(&v),
            "backend: null\nvalue:\n  chart:\n    name: c\n    repo: http://127.0.0.1:8080/charts\n    version: 0.1.0\n  name: rel\n  namespace: ns\n"
        );
        let v = json!({"a": [1, {"b": "x", "c": [true, null]}, [], {}], "e": {}, "f": []});
        assert_eq!(
            to_string(&v),
            "a:\n- 1\n- b: x\n  c:\n  - true\n  - null\n- []\n- {}\ne: {}\nf: []\n"
        );
        assert_eq!(to_string(&json!([["a", "b"], "c"])), "- - a\n  - b\n- c\n");
        assert_eq!(to_string(&Value::Null), "null\n");
    }

    #[test]
    fn quoting() {
        for (s, want) in [
            ("plain", "plain"),
            ("", "\"\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("1", "\"1\""),
            ("1.5", "\"1.5\""),
            ("0x1f", "\"0x1f\""),
            ("1_000", "\"1_000\""),
            ("1e3", "\"1e3\""),
            (".5", "\".5\""),
            ("1:20", "\"1:20\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("0.1.0", "0.1.0"),
            ("1.2.3-beta", "1.2.3-beta"),
            ("- x", "'- x'"),
            ("a: b", "'a: b'"),
            ("a #b", "'a #b'"),
            ("a#b", "a#b"),
            (" lead", "' lead'"),
            ("*star", "'*star'"),
            ("it's", "it's"),
            ("{{ .Values.x }}", "'{{ .Values.x }}'"),
            ("tab\tin", "tab\tin"),
            ("bell\u{7}", "\"bell\\a\""),
            ("http://x:80/y", "http://x:80/y"),
        ] {
            assert_eq!(to_string(&json!(s)), format!("{want}\n"), "{s:?}");
        }
    }

    #[test]
    fn literal_blocks() {
        assert_eq!(to_string(&json!({"t": "a\nb"})), "t: |-\n  a\n  b\n");
        assert_eq!(to_string(&json!({"t": "a\n\nb\n"})), "t: |\n  a\n\n  b\n");
        assert_eq!(to_string(&json!({"t": "a\n\n"})), "t: |+\n  a\n\n");
        assert_eq!(to_string(&json!(["a\nb"])), "- |-\n  a\n  b\n");
        assert_eq!(to_string(&json!({"t": "a \nb"})), "t: \"a \\nb\"\n");
    }

    #[test]
    fn long_plain_values_fold_at_80_columns() {
        let words = vec!["word"; 30].join(" ");
        let out = to_string(&json!({ "k": words }));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1, "{out}");
        assert!(lines[1].starts_with("  word"), "{out}");
        assert_eq!(out.split_whitespace().count(), 31);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            to_string(&json!({"i": 80, "f": 0.5, "w": 2.0, "big": 1.5e22, "small": 1e-7})),
            "big: 1.5e+22\nf: 0.5\ni: 80\nsmall: 1e-07\nw: 2\n"
        );
    }

    #[test]
    fn key_order_like_yaml_v2() {
        let mut keys = vec!["b", "a10", "a2", "B", "_x", "a", "1"];
        keys.sort_by(|a, b| key_order(a, b));
        assert_eq!(keys, vec!["_x", "1", "B", "a", "a2", "a10", "b"]);
    }
}
