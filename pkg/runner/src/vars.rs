//! The parsers every runner's variables go through: the common ones ([`Config`](crate::Config))
//! and each runner's own ([`ActionRunner::Config`](crate::ActionRunner::Config)).
//!
//! The Manager reads the environment once and hands the `RUNNER_*` variables to envy
//! ([`read`]). A variable that is more than text (a boolean, a duration) is read as text and
//! parsed here, with its name, so that a bad value is one line naming the variable in the
//! user's words: `invalid configuration: RUNNER_TIMEOUT="10" is not a Go duration (examples:
//! 90s, 10m, 1h30m)`. Booleans are Go's `strconv.ParseBool`'s and durations Go's
//! `time.ParseDuration`'s, as Capact reads its variables.

use std::fmt::Display;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::RunnerError;

/// Prefix shared by every runner variable.
pub const PREFIX: &str = "RUNNER_";

/// Deserializes the `RUNNER_*` variables among `vars` into `T` with envy: field
/// `context_name` is `RUNNER_CONTEXT_NAME`. Variables of other names are left out.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind): a required variable (a field that is
/// not an `Option`) is not set, or a value does not fit its field's type.
pub fn read<T: DeserializeOwned>(vars: &[(String, String)]) -> Result<T, RunnerError> {
    envy::prefixed(PREFIX)
        .from_iter(vars.iter().cloned())
        .map_err(|e| match e {
            envy::Error::MissingValue(field) => invalid(format!(
                "{PREFIX}{} is required but not set",
                field.to_ascii_uppercase()
            )),
            envy::Error::Custom(message) => invalid(message),
        })
}

/// `value`, unless it is unset or blank: an empty variable counts as unset.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `value` of required variable `var`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming `var` when `value` is blank.
pub fn required(var: &str, value: String) -> Result<String, RunnerError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{var} is required but empty")));
    }
    Ok(value)
}

/// Boolean variable `var`, the way Go's `strconv.ParseBool` reads it (Capact reads its
/// variables with it): `1 t T TRUE true True` and `0 f F FALSE false False`; unset or empty is
/// `false`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming `var` and the value.
pub fn boolean(var: &str, value: Option<String>) -> Result<bool, RunnerError> {
    match non_empty(value).as_deref() {
        None => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(invalid_value(
            var,
            other,
            "is not a boolean (true or false)",
        )),
    }
}

/// Duration variable `var`: a positive Go duration ([`go_duration`]); unset or empty is `None`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming `var`, the value and what is
/// wrong with it ([`DurationError`]).
pub fn duration(var: &str, value: Option<String>) -> Result<Option<Duration>, RunnerError> {
    match non_empty(value) {
        None => Ok(None),
        Some(text) => go_duration(&text)
            .map(Some)
            .map_err(|e| invalid_value(var, &text, e)),
    }
}

/// A configuration error: `invalid configuration: <message>`, where the message names the
/// variable.
pub fn invalid(message: impl Display) -> RunnerError {
    RunnerError::invalid_input(format!("invalid configuration: {message}"))
}

/// A configuration error about `var`'s `value`: `invalid configuration: VAR="value" <why>`.
pub fn invalid_value(var: &str, value: &str, why: impl Display) -> RunnerError {
    invalid(format!("{var}={value:?} {why}"))
}

/// Why a text is not a usable Go duration; the text is a sentence for after the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not Go's syntax.
    #[error("is not a Go duration (examples: 90s, 10m, 1h30m)")]
    NotADuration,
    /// Longer than Go's longest duration.
    #[error("is longer than the longest Go duration (2562047h47m16.854775807s)")]
    Overflow,
    /// Zero or negative.
    #[error("must be a positive duration")]
    NotPositive,
}

/// One nanosecond more than Go's longest duration (`time.Duration` is an `int64` of
/// nanoseconds).
const LIMIT: u64 = 1 << 63;

/// Parses a Go duration (`time.ParseDuration`, `src/time/format.go`: the contract Capact's
/// `RUNNER_TIMEOUT` is read with) into a positive [`Duration`]: an optional sign, then one or
/// more decimal numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `μs`,
/// `ms`, `s`, `m`, `h`), such as `90s`, `1h30m`, `1.5h`, `.5s`. The largest is Go's largest
/// `time.Duration`, 2562047h47m16.854775807s; like Go, anything larger is an overflow, and a
/// fraction is converted through a 64-bit float, so digits past its precision are lost the way
/// Go loses them.
///
/// Written here rather than taken from a crate: the one published port (`go-parse-duration`)
/// refuses durations Go accepts (`2562047h`), and the grammar is part of this project's
/// contract.
///
/// # Errors
/// [`DurationError`]: not a Go duration, an overflow, or not positive.
pub fn go_duration(text: &str) -> Result<Duration, DurationError> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Err(DurationError::NotPositive);
    }
    if rest.is_empty() {
        return Err(DurationError::NotADuration);
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (nanos, after) = Component::parse(rest)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= LIMIT)
            .ok_or(DurationError::Overflow)?;
        rest = after;
    }
    if negative {
        return Err(DurationError::NotPositive);
    }
    match total {
        LIMIT => Err(DurationError::Overflow),
        0 => Err(DurationError::NotPositive),
        nanos => Ok(Duration::from_nanos(nanos)),
    }
}

/// One `<number>[.<fraction>]<unit>` of a Go duration, such as `1.5h`.
struct Component {
    /// The integer part.
    integer: u64,
    /// The fraction.
    fraction: Fraction,
    /// The unit, in nanoseconds.
    unit: u64,
}

impl Component {
    /// The component at the start of `text`, in nanoseconds, and the text after it.
    fn parse(text: &str) -> Result<(u64, &str), DurationError> {
        let (integer, integer_digits, rest) = leading_integer(text)?;
        let (fraction, rest) = Fraction::leading(rest);
        if integer_digits == 0 && fraction.digits == 0 {
            return Err(DurationError::NotADuration);
        }
        let (unit, rest) = leading_unit(rest)?;
        let component = Component {
            integer,
            fraction,
            unit,
        };
        Ok((component.nanos()?, rest))
    }

    /// The component's length in nanoseconds, as Go computes it.
    fn nanos(&self) -> Result<u64, DurationError> {
        if self.integer > LIMIT / self.unit {
            return Err(DurationError::Overflow);
        }
        let mut nanos = self.integer * self.unit;
        if self.fraction.value > 0 {
            nanos += (self.fraction.value as f64 * (self.unit as f64 / self.fraction.scale)) as u64;
            if nanos > LIMIT {
                return Err(DurationError::Overflow);
            }
        }
        Ok(nanos)
    }
}

/// The decimal number at the start of `text`, its number of digits, and the text after it.
fn leading_integer(text: &str) -> Result<(u64, usize, &str), DurationError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: u64 = 0;
    for b in text[..digits].bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .filter(|v| *v <= LIMIT)
            .ok_or(DurationError::Overflow)?;
    }
    Ok((value, digits, &text[digits..]))
}

/// The fraction of a component: the digits after its `.`.
struct Fraction {
    /// The digits as a number, as many as fit (Go drops the rest).
    value: u64,
    /// 10 to the power of the number of digits kept.
    scale: f64,
    /// How many digits there are, kept or not.
    digits: usize,
}

impl Fraction {
    /// The fraction at the start of `text` (none when it does not start with `.`), and the text
    /// after it.
    fn leading(text: &str) -> (Fraction, &str) {
        let mut fraction = Fraction {
            value: 0,
            scale: 1.0,
            digits: 0,
        };
        let Some(after) = text.strip_prefix('.') else {
            return (fraction, text);
        };
        fraction.digits = after.bytes().take_while(u8::is_ascii_digit).count();
        for b in after[..fraction.digits].bytes() {
            match fraction
                .value
                .checked_mul(10)
                .and_then(|f| f.checked_add(u64::from(b - b'0')))
            {
                Some(f) if f <= LIMIT => {
                    fraction.value = f;
                    fraction.scale *= 10.0;
                }
                _ => break,
            }
        }
        let rest = &after[fraction.digits..];
        (fraction, rest)
    }
}

/// The unit at the start of `text` (everything up to the next digit or `.`), in nanoseconds,
/// and the text after it.
fn leading_unit(text: &str) -> Result<(u64, &str), DurationError> {
    let len = text
        .char_indices()
        .find(|(_, c)| *c == '.' || c.is_ascii_digit())
        .map_or(text.len(), |(i, _)| i);
    let nanos = match &text[..len] {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(DurationError::NotADuration),
    };
    Ok((nanos, &text[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything Go's `time.ParseDuration` accepts (`src/time/format.go`): signs, fractions
    /// without a leading digit, every unit, and up to 2562047h47m16.854775807s, the largest
    /// `time.Duration`; one nanosecond more overflows, as in Go.
    #[test]
    fn durations_over_go_s_whole_range() {
        let max = Duration::from_nanos(i64::MAX as u64);
        for (text, want) in [
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
            ("2562047h47m16.854775807s", max),
            ("9223372036854775807ns", max),
            ("+5s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            (
                "1h1m1s1ms1us1µs1ns",
                Duration::from_nanos(3_661_001_002_001),
            ),
            ("1μs", Duration::from_micros(1)),
            ("90s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            // Digits of a fraction past what fits are dropped, as Go drops them.
            ("1.00000000000000000000001s", Duration::from_secs(1)),
        ] {
            assert_eq!(go_duration(text), Ok(want), "{text}");
        }
        let bad: [(DurationError, &[&str]); 3] = [
            (
                DurationError::Overflow,
                &[
                    "2562048h",
                    "2562047h47m16.854775808s",
                    "9223372036854775808ns",
                ],
            ),
            (
                DurationError::NotADuration,
                &["1d", "s", ".s", "", "10", "-1d"],
            ),
            (DurationError::NotPositive, &["-5s", "0s", "0"]),
        ];
        for (why, texts) in bad {
            for text in texts {
                assert_eq!(go_duration(text), Err(why), "{text}");
            }
        }
    }

    #[test]
    fn booleans_like_go() {
        for (text, want) in [("True", true), ("1", true), ("F", false), ("", false)] {
            assert_eq!(boolean("RUNNER_X", Some(text.into())).unwrap(), want);
        }
        assert!(!boolean("RUNNER_X", None).unwrap());
        assert_eq!(
            boolean("RUNNER_X", Some("yes".into()))
                .unwrap_err()
                .to_string(),
            "invalid configuration: RUNNER_X=\"yes\" is not a boolean (true or false)"
        );
    }

    #[test]
    fn errors_name_the_variable_in_one_line() {
        let e = duration("RUNNER_TIMEOUT", Some("ten minutes".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: RUNNER_TIMEOUT=\"ten minutes\" is not a Go duration \
             (examples: 90s, 10m, 1h30m)"
        );
        assert_eq!(duration("RUNNER_TIMEOUT", Some(" ".into())).unwrap(), None);
        let e = required("RUNNER_X", " ".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: RUNNER_X is required but empty"
        );
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            context_name: String,
        }
        let e = read::<Needs>(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: RUNNER_CONTEXT_NAME is required but not set"
        );
    }
}
