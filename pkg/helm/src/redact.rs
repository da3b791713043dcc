//! Redaction: the values (and a private repository's password) never shown, in any form Helm,
//! Kubernetes or a chart may print them in, without shredding the text around them.
//!
//! Two rules, by the length of the value (see `docs/redaction.md` for the whole story):
//!
//! - **Long values** (at least [`MIN_SECRET_LEN`] characters, and not `true`, `false` or
//!   `null`): each form is replaced wherever it occurs, even inside a longer word, so that no
//!   part of a text can hide one.
//! - **Short values** (fewer characters, booleans, `null`, and numbers that print short): each
//!   form is replaced only where it stands as a whole value ([`in_value_position`]): a whole
//!   quoted string, the whole unquoted value after `key: `, `"key":` or `key=`, a whole YAML list
//!   item, or a whole line. Replacing every `a`, `1` or `true` in a message would make it
//!   unreadable without hiding anything: `another`, `revision 1` and `true to form` stay as
//!   they are, `password: ab` becomes `password: <redacted>`.
//!
//! The forms ([`forms_of`]): as is; Go-quoted (`%q`); JSON-escaped as serde_json and as Go's
//! `encoding/json` write it; YAML single-quoted and double-quoted (go-yaml's escapes);
//! URL-escaped as Go's `url.QueryEscape`, `url.PathEscape` and `url.UserPassword` write it;
//! base64 (standard and URL-safe alphabets, with and without padding); for a multi-line value,
//! each line on its own in every one of these forms; for a number, every way Go prints it
//! ([`go_float`]: a float64 `1000000` prints `1e+06`).

use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// Values with fewer characters than this (and `true`, `false`, `null`) are short: they are
/// replaced only where they stand as a whole value, never inside other words.
pub const MIN_SECRET_LEN: usize = 4;

/// Replaces secrets (the leaves of the values, a repository's password) in text shown to the
/// user, in every form they may be printed in ([`Redactor::add`]), long ones wherever they
/// occur and short ones where they stand as a whole value (see the module's documentation).
/// Cloning is cheap (the forms are shared until one of the clones adds more).
#[derive(Clone, Default)]
pub struct Redactor {
    forms: Arc<Forms>,
}

/// The forms of every secret, longest first in each list.
#[derive(Clone, Default)]
struct Forms {
    /// Replaced wherever they occur.
    anywhere: Vec<String>,
    /// Replaced where they stand as a whole value only.
    whole_value: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Redactor({} forms, {} whole-value forms)",
            self.forms.anywhere.len(),
            self.forms.whole_value.len()
        )
    }
}

/// Words that are short values whatever their length: YAML's and JSON's keywords, which every
/// message may hold as words of its own.
const KEYWORDS: [&str; 3] = ["true", "false", "null"];

impl Redactor {
    /// Adds every leaf of `value` as a secret: strings ([`Redactor::add`]), numbers (as every
    /// form Go prints them in: [`number_texts`]) and booleans (`true`, `false`: short values).
    /// `null` and the mapping keys are not added.
    pub fn add_values(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add(s),
            Value::Number(n) => number_texts(n).iter().for_each(|t| self.add(t)),
            Value::Bool(b) => self.add(if *b { "true" } else { "false" }),
            Value::Array(a) => a.iter().for_each(|v| self.add_values(v)),
            Value::Object(m) => m.values().for_each(|v| self.add_values(v)),
            Value::Null => {}
        }
    }

    /// Adds one secret: the whole of it and, when it has more than one line, each line on its
    /// own (trimmed; Helm may show one line of a PEM key), each in every form of [`forms_of`].
    /// Each piece is long or short by its own length (trimmed; see [`MIN_SECRET_LEN`]), and all
    /// its forms with it. A blank secret adds nothing.
    pub fn add(&mut self, secret: &str) {
        let mut pieces = vec![secret];
        if secret.contains(['\n', '\r']) {
            pieces.extend(secret.lines().map(str::trim));
        }
        let forms = Arc::make_mut(&mut self.forms);
        for piece in pieces {
            let trimmed = piece.trim();
            if trimmed.is_empty() {
                continue;
            }
            let short = trimmed.chars().count() < MIN_SECRET_LEN || KEYWORDS.contains(&trimmed);
            let list = if short {
                &mut forms.whole_value
            } else {
                &mut forms.anywhere
            };
            for form in forms_of(piece) {
                if !form.is_empty() && !list.contains(&form) {
                    list.push(form);
                }
            }
        }
        forms.sort();
    }

    /// Adds every secret `other` holds.
    pub fn merge(&mut self, other: &Redactor) {
        let forms = Arc::make_mut(&mut self.forms);
        for (mine, theirs) in [
            (&mut forms.anywhere, &other.forms.anywhere),
            (&mut forms.whole_value, &other.forms.whole_value),
        ] {
            for s in theirs {
                if !mine.contains(s) {
                    mine.push(s.clone());
                }
            }
        }
        forms.sort();
    }

    /// `text` with every form of every secret replaced by [`REDACTED`]: long forms wherever
    /// they occur, longest first (a secret holding another is replaced whole), then short
    /// forms where they stand as a whole value ([`in_value_position`]).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.forms.anywhere {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        for s in &self.forms.whole_value {
            if out.contains(s.as_str()) {
                out = replace_whole_values(&out, s);
            }
        }
        out
    }

    /// `value` with every string in it (mapping keys too) redacted as [`Redactor::redact`]
    /// does, so that it stays a document of the same shape (redacting its JSON text would leave
    /// `"exitCode":<redacted>`, which is no JSON). Numbers and booleans are typed data the
    /// runner built (an exit code, a count), not text a value can hide in: they are kept.
    pub fn redact_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.redact(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.redact_value(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.redact(k), self.redact_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

impl Forms {
    fn sort(&mut self) {
        for list in [&mut self.anywhere, &mut self.whole_value] {
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// Every form `piece` may be printed in: as is (and trimmed); Go-quoted ([`go_quote`]);
/// JSON-escaped ([`json_escape`], [`go_json_escape`]); YAML single-quoted
/// ([`yaml_single_quote`]) and double-quoted ([`yaml_double_quote`]); URL-escaped
/// ([`url_query_escape`], [`url_path_escape`], [`url_userinfo_escape`]); base64, standard and
/// URL-safe alphabets, each with and without padding (RFC 4648 §4 and §5: a Kubernetes Secret's
/// `data`, a chart's `b64enc`, a JWT or URL-safe token). Without the surrounding quotes.
pub fn forms_of(piece: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut forms = vec![
        piece.to_string(),
        piece.trim().to_string(),
        go_quote(piece),
        json_escape(piece),
        go_json_escape(piece),
        yaml_single_quote(piece),
        yaml_double_quote(piece),
        url_query_escape(piece),
        url_path_escape(piece),
        url_userinfo_escape(piece),
    ];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(piece));
    }
    let mut unique: Vec<String> = Vec::with_capacity(forms.len());
    for f in forms {
        if !unique.contains(&f) {
            unique.push(f);
        }
    }
    unique
}

/// `text` with each occurrence of `form` that stands as a whole value replaced.
fn replace_whole_values(text: &str, form: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(form) {
        let end = i + form.len();
        if in_value_position(&text[..i], &text[end..]) {
            out.push_str(&text[last..i]);
            out.push_str(REDACTED);
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Whether a short value found between `before` and `after` stands as a whole value:
///
/// 1. a whole quoted string: `"v"`, `'v'`, `` `v` ``, or `\"v\"` (JSON inside a Go-quoted
///    string);
/// 2. the whole unquoted value after `key: ` (a colon and at least one space or tab: YAML,
///    Kubernetes' `Invalid value: v: ...`) or after `"key":` (JSON), the value ending the line
///    or followed, spaces aside, by `,` `;` `:` `}` `]` `)` `#`, or by the end of an enclosing
///    quoted string (`"`, `'`, or the `\` of an escaped quote or line break: `msg="pin: v"`);
/// 3. the whole value after `=` (spaces allowed around it: `key=v`, `--set k=v`, slog's
///    `k=v`), followed by the end, a space, `&` `,` `;` `}` `]` `)`, or the end of an
///    enclosing quoted string;
/// 4. a whole YAML list item (`- v` alone on its line, after indentation);
/// 5. a whole line (`v` alone on its line, spaces aside).
///
/// So `a` in `another`, `a chart` or `failed: a chart` stays, and so does `1` in `revision 1`
/// and `10:30`; Go's `%v` of a map (`map[key:v]`) is not a value position (it cannot be told
/// from `host:80`).
pub fn in_value_position(before: &str, after: &str) -> bool {
    if let Some(q @ ('"' | '\'' | '`')) = before.chars().next_back() {
        return after.starts_with(q) || after.strip_prefix('\\').is_some_and(|a| a.starts_with(q));
    }
    let head = before.trim_end_matches([' ', '\t']);
    let spaced = head.len() < before.len();
    let line_rest = after.trim_start_matches([' ', '\t']);
    let ends_line = line_rest.is_empty() || line_rest.starts_with(['\n', '\r']);
    let closing = ['"', '\'', '\\'];
    let ends_value = ends_line
        || line_rest.starts_with([',', ';', ':', '}', ']', ')', '#'])
        || line_rest.starts_with(closing);
    match head.chars().next_back() {
        Some('=') => {
            after.is_empty()
                || after.starts_with(char::is_whitespace)
                || after.starts_with(['&', ',', ';', '}', ']', ')'])
                || after.starts_with(closing)
        }
        Some(':') => ends_value && (spaced || head[..head.len() - 1].ends_with('"')),
        Some('-') => {
            let indent = head[..head.len() - 1].trim_end_matches([' ', '\t']);
            ends_line && spaced && (indent.is_empty() || indent.ends_with('\n'))
        }
        Some('\n') | None => ends_line,
        _ => false,
    }
}

/// Every text a JSON number may be printed as: as serde_json writes it (`80`, `1.5`,
/// `1000000`), and as Go prints the float64 Helm reads it as (Helm reads values through JSON,
/// so every number is a float64): [`go_float`] with `'g'` (`fmt`'s `%v`, text/template and
/// YAML: `1e+06`), with `'f'` (`1000000`), and as `encoding/json` writes it ([`go_json_float`]).
pub fn number_texts(n: &serde_json::Number) -> Vec<String> {
    let mut texts = vec![n.to_string()];
    if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
        for t in [go_float(f, 'g'), go_float(f, 'f'), go_json_float(f)] {
            if !texts.contains(&t) {
                texts.push(t);
            }
        }
    }
    texts
}

/// `f` as Go's `strconv.FormatFloat(f, fmt, -1, 64)` writes it, with the shortest digits that
/// read back as `f`: `'e'` (`1e+06`, `1.5e-07`: at least two exponent digits), `'f'`
/// (`1000000`, `0.0000001`), or `'g'`, which is what `fmt`'s `%v` and text/template print: the
/// `'e'` form when the decimal exponent is below -4 or at least 6 (Go's rule for the shortest
/// form, `strconv/ftoa.go`), the `'f'` form otherwise (`1e+06`, `100000`, `1e-05`, `0.0001`).
/// Any other `fmt` is taken as `'g'`. `f` must be finite.
pub fn go_float(f: f64, fmt: char) -> String {
    // Rust's `{:e}` writes the same shortest digits: `1.2345e6`, `0e0`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let dp = exp.parse::<i32>().unwrap_or(0) + 1;
    let nd = digits.len() as i32;
    let body = match fmt {
        'e' => fmt_e(&digits, dp),
        'f' => fmt_f(&digits, dp, (nd - dp).max(0)),
        // Go's `%e` when the exponent is below -4 or at least the precision, 6 for the shortest.
        _ if !(-4..6).contains(&(dp - 1)) => fmt_e(&digits, dp),
        _ => fmt_f(&digits, dp, (nd - dp).max(0)),
    };
    if f.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

/// `d.ddde±XX` (Go's `fmtE` with all the digits).
fn fmt_e(digits: &[u8], dp: i32) -> String {
    let mut s = String::new();
    s.push(char::from(digits[0]));
    if digits.len() > 1 {
        s.push('.');
        s.extend(digits[1..].iter().map(|&d| char::from(d)));
    }
    let exp = if digits == b"0" { 0 } else { dp - 1 };
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

/// `ddd.ddd` with `decimals` digits after the point (Go's `fmtF`).
fn fmt_f(digits: &[u8], dp: i32, decimals: i32) -> String {
    let digit = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i))
            .map_or('0', |&d| char::from(d))
    };
    let mut s: String = if dp > 0 {
        (0..dp).map(digit).collect()
    } else {
        "0".into()
    };
    if decimals > 0 {
        s.push('.');
        s.extend((0..decimals).map(|i| digit(dp + i)));
    }
    s
}

/// `f` as Go's `encoding/json` writes a float64: `'f'` unless it is below 1e-6 or at least
/// 1e21 (then `'e'`, a one-digit negative exponent without its `0`: `1e-7`, `1e+21`).
pub fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = go_float(f, 'e');
        match e.rsplit_once("e-0") {
            Some((m, d)) if d.len() == 1 => format!("{m}e-{d}"),
            _ => e,
        }
    } else {
        go_float(f, 'f')
    }
}

/// `s` as Go's `strconv.Quote` (and so `fmt`'s `%q`) writes it, without the surrounding quotes:
/// `"` → `\"`, `\` → `\\`, `\a \b \f \n \r \t \v` by name, other characters below
/// U+0020 and U+007F as `\xHH`, non-printable characters as `\uHHHH` (or `\UHHHHHHHH` above
/// U+FFFF), printable ones as they are (Go's `strconv.appendEscapedRune`).
///
/// "Printable" is Go's `unicode.IsPrint` (letters, marks, numbers, punctuation, symbols and the
/// ASCII space). Rust's standard library has no Unicode category table, so this approximates it
/// as: not a control character, not whitespace other than U+0020, and not one of the format
/// characters (category Cf) U+00AD, U+0600–U+0605, U+061C, U+06DD, U+070F, U+180E,
/// U+200B–U+200F, U+202A–U+202E, U+2060–U+2064, U+2066–U+206F, U+FEFF, U+FFF9–U+FFFB; a private
/// use or unassigned code point is taken as printable where Go would escape it.
pub fn go_quote(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out
}

/// Go's `unicode.IsPrint`, approximated as [`go_quote`] describes.
fn go_printable(c: char) -> bool {
    let n = c as u32;
    let format = matches!(n,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB);
    !c.is_control() && (c == ' ' || !c.is_whitespace()) && !format
}

/// `s` as serde_json writes a JSON string, without the surrounding quotes (`"`, `\` and control
/// characters escaped).
pub fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_string()
}

/// `s` as Go's `encoding/json` writes a string (Helm's `-o json`), without the surrounding
/// quotes: as [`json_escape`], and also `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026` (Go's
/// default HTML escaping) and U+2028, U+2029 as `\u2028`, `\u2029` (`encoding/json`,
/// `appendString`).
pub fn go_json_escape(s: &str) -> String {
    json_escape(s)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// `s` in a YAML single-quoted scalar, without the quotes: `'` doubled (YAML 1.2 §7.3.2, the
/// only escape of that style).
pub fn yaml_single_quote(s: &str) -> String {
    s.replace('\'', "''")
}

/// `s` in a YAML double-quoted scalar as go-yaml (`gopkg.in/yaml.v3`, and libyaml's emitter it
/// follows) writes it, without the quotes: `"` and `\` escaped; `\0 \a \b \t \n \v \f \r \e`,
/// U+0085 `\N`, U+2028 `\L`, U+2029 `\P` by name; other characters outside YAML's printable
/// set (below U+0020, U+007F–U+009F, U+FEFF, U+FFFE, U+FFFF, surrogates, and everything above
/// U+FFFF) as `\xHH`, `\uHHHH` or `\UHHHHHHHH` with upper-case digits. go-yaml folds a double-
/// quoted scalar longer than its line width (80) at a space; the pieces of such a fold are not
/// matched (the lines of a multi-line value are).
pub fn yaml_double_quote(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        let named = match c {
            '\0' => "\\0",
            '\u{7}' => "\\a",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{b}' => "\\v",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{85}' => "\\N",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            _ => "",
        };
        let n = c as u32;
        let printable = matches!(n, 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && n != 0xFEFF;
        if !named.is_empty() {
            out.push_str(named);
        } else if printable {
            out.push(c);
        } else if n <= 0xFF {
            let _ = write!(out, "\\x{n:02X}");
        } else if n <= 0xFFFF {
            let _ = write!(out, "\\u{n:04X}");
        } else {
            let _ = write!(out, "\\U{n:08X}");
        }
    }
    out
}

/// Which characters a URL escape keeps besides the unreserved ones (letters, digits, `-`,
/// `_`, `.`, `~`): Go's `net/url` `shouldEscape` for each mode.
#[derive(Clone, Copy)]
enum UrlPart {
    /// `url.QueryEscape` (`encodeQueryComponent`): keeps none; a space is `+`.
    Query,
    /// `url.PathEscape` (`encodePathSegment`): keeps `$ & + : = @`.
    PathSegment,
    /// `url.UserPassword(...).String()` (`encodeUserPassword`): keeps `$ & + , ; =`.
    UserInfo,
}

fn url_escape(s: &str, part: UrlPart) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let kept = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || match part {
                UrlPart::Query => false,
                UrlPart::PathSegment => matches!(b, b'$' | b'&' | b'+' | b':' | b'=' | b'@'),
                UrlPart::UserInfo => matches!(b, b'$' | b'&' | b'+' | b',' | b';' | b'='),
            };
        if kept {
            out.push(char::from(b));
        } else if b == b' ' && matches!(part, UrlPart::Query) {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `s` as Go's `url.QueryEscape` writes it (a query parameter): every byte but letters, digits
/// and `-_.~` as `%HH` (upper case, per UTF-8 byte), a space as `+`.
pub fn url_query_escape(s: &str) -> String {
    url_escape(s, UrlPart::Query)
}

/// `s` as Go's `url.PathEscape` writes it (a path segment): as [`url_query_escape`], but a
/// space is `%20` and `$ & + : = @` are kept.
pub fn url_path_escape(s: &str) -> String {
    url_escape(s, UrlPart::PathSegment)
}

/// `s` as Go writes the password of a URL's user information (`url.UserPassword(u,
/// s).String()`, `https://u:<this>@host`): as [`url_path_escape`], but `, ;` are kept and
/// `: @` escaped.
pub fn url_userinfo_escape(s: &str) -> String {
    url_escape(s, UrlPart::UserInfo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use serde_json::json;

    #[test]
    fn redacts_values() {
        let mut r = Redactor::default();
        r.add_values(
            &json!({"db": {"password": "hunter22", "port": 5432, "short": "ab"},
            "list": ["tok-123456"], "multi": "line one\nline two"}),
        );
        // `ab` is short, and here a word of prose, not a value: it stays.
        let text = "failed: hunter22 and tok-123456 on 5432 ab line two";
        assert_eq!(
            r.redact(text),
            "failed: <redacted> and <redacted> on <redacted> ab <redacted>"
        );
        assert_eq!(r.redact("short: ab"), "short: <redacted>");
    }

    /// Go's `strconv.Quote` of these strings, as Go 1.26 prints them (without the quotes).
    #[test]
    fn go_quote_matches_go() {
        for (s, go) in [
            ("plain", "plain"),
            ("a\"b\\c", "a\\\"b\\\\c"),
            (
                "l1\nl2\tt\r\u{7}\u{8}\u{c}\u{b}",
                "l1\\nl2\\tt\\r\\a\\b\\f\\v",
            ),
            ("\u{1}\u{1f}\u{7f}", "\\x01\\x1f\\x7f"),
            ("é😀 ", "é😀 "),
            (
                "\u{a0}\u{200b}\u{feff}\u{2028}",
                "\\u00a0\\u200b\\ufeff\\u2028",
            ),
            ("\u{85}", "\\u0085"),
        ] {
            assert_eq!(go_quote(s), go, "{s:?}");
        }
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            json_escape("a\"b\\c\nd\u{1}<&>"),
            "a\\\"b\\\\c\\nd\\u0001<&>"
        );
        assert_eq!(
            go_json_escape("a\"b\nd<&>\u{2028}"),
            "a\\\"b\\nd\\u003c\\u0026\\u003e\\u2028"
        );
    }

    /// `net/url`'s `QueryEscape`, `PathEscape` and `UserPassword("u", s).String()`, and
    /// `gopkg.in/yaml.v3` v3.0.1's double- and single-quoted scalars, as Go 1.26 prints them.
    #[test]
    fn url_and_yaml_forms_match_go() {
        let s = "pa ss+w/o?r&d=1;x,y:z@h$!*'()~_-.";
        assert_eq!(
            url_query_escape(s),
            "pa+ss%2Bw%2Fo%3Fr%26d%3D1%3Bx%2Cy%3Az%40h%24%21%2A%27%28%29~_-."
        );
        assert_eq!(
            url_path_escape(s),
            "pa%20ss+w%2Fo%3Fr&d=1%3Bx%2Cy:z@h$%21%2A%27%28%29~_-."
        );
        assert_eq!(
            url_userinfo_escape(s),
            "pa%20ss+w%2Fo%3Fr&d=1;x,y%3Az%40h$%21%2A%27%28%29~_-."
        );
        assert_eq!(yaml_double_quote(s), s);
        assert_eq!(yaml_single_quote(s), "pa ss+w/o?r&d=1;x,y:z@h$!*''()~_-.");
        let odd = "é😀 \u{a0}\u{85}\u{2028}\u{feff}\t\u{1}\u{7f}\"\\\r\n\u{1b}";
        assert_eq!(
            url_query_escape(odd),
            "%C3%A9%F0%9F%98%80+%C2%A0%C2%85%E2%80%A8%EF%BB%BF%09%01%7F%22%5C%0D%0A%1B"
        );
        assert_eq!(
            url_path_escape(odd),
            "%C3%A9%F0%9F%98%80%20%C2%A0%C2%85%E2%80%A8%EF%BB%BF%09%01%7F%22%5C%0D%0A%1B"
        );
        assert_eq!(
            yaml_double_quote(odd),
            "é\\U0001F600 \u{a0}\\N\\L\\uFEFF\\t\\x01\\x7F\\\"\\\\\\r\\n\\e"
        );
    }

    /// `strconv.FormatFloat(f, 'g'|'f', -1, 64)` and `encoding/json` of a float64, as Go 1.26
    /// prints them.
    #[test]
    fn go_floats_match_go() {
        for (f, g, fixed, json) in [
            (0.0, "0", "0", "0"),
            (80.0, "80", "80", "80"),
            (1.5, "1.5", "1.5", "1.5"),
            (1e6, "1e+06", "1000000", "1000000"),
            (100000.0, "100000", "100000", "100000"),
            (123456789.0, "1.23456789e+08", "123456789", "123456789"),
            (0.0001, "0.0001", "0.0001", "0.0001"),
            (0.00001, "1e-05", "0.00001", "0.00001"),
            (1e21, "1e+21", "1000000000000000000000", "1e+21"),
            (1e-7, "1e-07", "0.0000001", "1e-7"),
            (
                12345678901234567890.0,
                "1.2345678901234567e+19",
                "12345678901234567000",
                "12345678901234567000",
            ),
            (-2.5e-10, "-2.5e-10", "-0.00000000025", "-2.5e-10"),
            (1e100, "1e+100", &format!("1{}", "0".repeat(100)), "1e+100"),
        ] {
            assert_eq!(go_float(f, 'g'), g, "{f}");
            assert_eq!(go_float(f, 'f'), fixed, "{f}");
            assert_eq!(go_json_float(f), json, "{f}");
        }
        let texts = number_texts(&serde_json::Number::from(1_000_000u64));
        assert_eq!(texts, ["1000000", "1e+06"]);
    }

    /// One value kind: the value, the texts it is printed as (a number's every Go form) and,
    /// for a multi-line value, one of its lines.
    struct Kind {
        name: &'static str,
        value: Value,
        texts: Vec<String>,
        line: Option<&'static str>,
    }

    fn kinds() -> Vec<Kind> {
        let pem =
            "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34+k/xFhD9\nend-of-key line\n-----END KEY-----";
        let text = |v: &str| vec![v.to_string()];
        vec![
            Kind {
                name: "string long",
                value: json!("it's a \"pa55/w+rd\" & é"),
                texts: text("it's a \"pa55/w+rd\" & é"),
                line: None,
            },
            Kind {
                name: "string short",
                value: json!("a b"),
                texts: text("a b"),
                line: None,
            },
            Kind {
                name: "one-letter",
                value: json!("q"),
                texts: text("q"),
                line: None,
            },
            Kind {
                name: "multi-line PEM-like",
                value: json!(pem),
                texts: text(pem),
                line: Some("MIIBOgIBAAJBAKj34+k/xFhD9"),
            },
            Kind {
                name: "number int",
                value: json!(1_000_000),
                texts: vec!["1000000".into(), "1e+06".into()],
                line: None,
            },
            Kind {
                name: "number int short",
                value: json!(80),
                texts: text("80"),
                line: None,
            },
            Kind {
                name: "number float",
                value: json!(1.5),
                texts: text("1.5"),
                line: None,
            },
            Kind {
                name: "bool",
                value: json!(true),
                texts: text("true"),
                line: None,
            },
        ]
    }

    /// Every encoding of `text`, named.
    fn encodings(text: &str) -> Vec<(&'static str, String)> {
        vec![
            ("raw", text.to_string()),
            ("Go %q", go_quote(text)),
            ("JSON", json_escape(text)),
            ("Go JSON", go_json_escape(text)),
            ("base64 std", STANDARD.encode(text)),
            ("base64 std unpadded", STANDARD_NO_PAD.encode(text)),
            ("base64 url-safe", URL_SAFE.encode(text)),
            ("base64 url-safe unpadded", URL_SAFE_NO_PAD.encode(text)),
            ("URL query-escape", url_query_escape(text)),
            ("URL path-escape", url_path_escape(text)),
            ("URL userinfo", url_userinfo_escape(text)),
            ("YAML single-quoted", yaml_single_quote(text)),
            ("YAML double-quoted", yaml_double_quote(text)),
        ]
    }

    /// Value kind × encoding: each form is redacted in every value position; a long value's
    /// forms also where they are glued to other text.
    #[test]
    fn every_kind_in_every_encoding_is_redacted() {
        for kind in kinds() {
            let mut r = Redactor::default();
            r.add_values(&json!({"secret": kind.value}));
            let mut cases: Vec<(String, String)> = Vec::new();
            for text in &kind.texts {
                for (encoding, form) in encodings(text) {
                    cases.push((format!("{encoding} of {text:?}"), form));
                }
            }
            if let Some(line) = kind.line {
                for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                    cases.push(("base64 of one line".into(), engine.encode(line)));
                }
                cases.push(("one line, Go %q".into(), go_quote(line)));
            }
            if let Some(f) = kind.value.as_f64() {
                cases.push(("Go float formatting".into(), go_float(f, 'g')));
                cases.push(("Go JSON float".into(), go_json_float(f)));
            }
            let long = kind.texts[0].chars().count() >= MIN_SECRET_LEN
                && !KEYWORDS.contains(&kind.texts[0].as_str());
            for (encoding, form) in &cases {
                let mut contexts = vec![
                    format!("password: {form}\nnext: x"),
                    format!("{{\"password\":\"{form}\"}}"),
                    format!("{{\"password\": \"{form}\", \"n\": 1}}"),
                    format!("--set password={form} --debug"),
                    format!("Invalid value: {form}: must be"),
                    format!("password: '{form}'"),
                    format!("- {form}\n"),
                ];
                if long {
                    contexts.push(format!("cannot use{form}here"));
                }
                for context in contexts {
                    let shown = r.redact(&context);
                    assert!(
                        shown.contains(REDACTED) && !shown.contains(form.as_str()),
                        "{}: {encoding} {form:?} in {context:?} shows as {shown:?}",
                        kind.name
                    );
                }
            }
        }
    }

    /// Short values are replaced only where they stand as a whole value: prose, words holding
    /// them, times, host:port and Go's map printing stay as they are.
    #[test]
    fn short_values_do_not_shred_text() {
        let mut r = Redactor::default();
        r.add_values(
            &json!({"a": "a", "n": 1, "port": 80, "on": true, "off": false,
            "s": "no", "pi": 1.5, "null": "null"}),
        );
        let prose = "another chart, a release: revision 1 of 80 at 10:30 is true to form; \
                     failed: no such host; 1.5x faster, version 1.50, localhost:80, map[a:b], \
                     false-positive, nullable, a.b, -a, \"an\" 'ab' (a)";
        assert_eq!(r.redact(prose), prose);
        let values = "password: a\nport: 80 # the port\nlist:\n  - no\nenabled=true&x=1\n\
                      {\"on\":true,\"pi\":1.5}\nInvalid value: 80: must\n'a' and \"a\"\n\
                      msg=\\\"a\\\"\n80\nlevel=ERROR msg=\"pin: 80\" x=\"n=1\"\n";
        assert_eq!(
            r.redact(values),
            "password: <redacted>\nport: <redacted> # the port\nlist:\n  - <redacted>\n\
             enabled=<redacted>&x=<redacted>\n{\"on\":<redacted>,\"pi\":<redacted>}\n\
             Invalid value: <redacted>: must\n'<redacted>' and \"<redacted>\"\n\
             msg=\\\"<redacted>\\\"\n<redacted>\n\
             level=ERROR msg=\"pin: <redacted>\" x=\"n=<redacted>\"\n"
        );
    }

    /// Long values are replaced wherever they occur, whole before their parts.
    #[test]
    fn long_values_are_replaced_anywhere() {
        let mut r = Redactor::default();
        r.add("hunter22");
        r.add("hunter22-and-more");
        assert_eq!(
            r.redact("xhunter22y hunter22-and-more"),
            "x<redacted>y <redacted>"
        );
    }

    /// Each secret is redacted as is, Go-quoted, JSON-escaped (serde_json's and Go's) and line
    /// by line, in each of those forms.
    #[test]
    fn redacts_every_form() {
        let secret = "pa\"ss\\wo<r>d\tx";
        let pem =
            "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\nend-of-key-line\n-----END KEY-----";
        let mut r = Redactor::default();
        r.add_values(&json!({"a": secret, "b": pem}));
        for form in [
            secret.to_string(),
            go_quote(secret),
            json_escape(secret),
            go_json_escape(secret),
            pem.to_string(),
            go_quote(pem),
            json_escape(pem),
            "MIIBOgIBAAJBAKj34GkxFhD9".to_string(),
            "end-of-key-line".to_string(),
        ] {
            let text = format!("error: value \"{form}\" is invalid");
            let shown = r.redact(&text);
            assert_eq!(shown, "error: value \"<redacted>\" is invalid", "{form:?}");
        }
        // A line of the PEM key inside Go's quoting of the whole key.
        let shown = r.redact(&format!(
            "x {}",
            go_quote("prefix\nMIIBOgIBAAJBAKj34GkxFhD9")
        ));
        assert!(!shown.contains("MIIBOgIBAAJBAKj34GkxFhD9"), "{shown}");
    }

    #[test]
    fn merge_adds_the_other_secrets() {
        let mut a = Redactor::default();
        a.add("first-secret");
        let mut b = Redactor::default();
        b.add("second-secret");
        b.add("zz");
        a.merge(&b);
        assert_eq!(
            a.redact("first-secret second-secret k: zz"),
            "<redacted> <redacted> k: <redacted>"
        );
    }

    /// A structured document stays one: its strings are redacted, its numbers kept.
    #[test]
    fn redact_value_keeps_the_shape() {
        let mut r = Redactor::default();
        r.add_values(&json!({"p": "hunter22", "n": 3}));
        assert_eq!(
            r.redact_value(&json!([{"message": "pw hunter22", "exitCode": 3, "m": "code: 3"}])),
            json!([{"message": "pw <redacted>", "exitCode": 3, "m": "code: <redacted>"}])
        );
    }

    /// Cloning shares the forms until a clone adds its own.
    #[test]
    fn clones_are_independent() {
        let mut a = Redactor::default();
        a.add("first-secret");
        let mut b = a.clone();
        b.add("second-secret");
        assert_eq!(a.redact("second-secret"), "second-secret");
        assert_eq!(b.redact("first-secret"), "<redacted>");
    }
}
