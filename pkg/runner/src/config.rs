//! The `RUNNER_*` environment variables every runner reads, parsed with `envy`.
//!
//! The variable set follows Capact's action-runner contract; see the README's table.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;

use crate::context::{ExecutionContext, KubernetesPlatform};
use crate::error::RunnerError;
use crate::validation;

/// Prefix shared by every variable.
pub const PREFIX: &str = "RUNNER_";

/// Where Kubernetes reads a container's termination message by default
/// (`terminationMessagePath` of a container, `k8s.io/api/core/v1`).
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// Whether a runner needs a variable to be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// It must be set.
    Yes,
    /// It may be left unset.
    No,
    /// It must be set in the case the text names (Markdown: code spans only), for example
    /// ``for `upgrade`, `uninstall`, `rollback` ``.
    When(&'static str),
}

impl Required {
    /// As the READMEs' `required` column says it: `yes`, `no`, or the case.
    pub fn as_str(self) -> &'static str {
        match self {
            Required::Yes => "yes",
            Required::No => "no",
            Required::When(case) => case,
        }
    }
}

/// One environment variable a runner reads: a row of the variable tables that `--help` prints
/// and the READMEs show (a test checks that the READMEs' tables are these). Texts are Markdown
/// with code spans only; `--help` prints them without the backticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// Its name, for example `RUNNER_TIMEOUT`.
    pub name: &'static str,
    /// Whether it must be set.
    pub required: Required,
    /// What applies when it is unset; `None` when there is nothing to say.
    pub default: Option<&'static str>,
    /// What it is for.
    pub meaning: &'static str,
}

/// The variables every runner reads (the README's table under "Configuration"); each runner's
/// own are beside its configuration.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "RUNNER_INPUT_MANIFEST_PATH",
        required: Required::Yes,
        default: None,
        meaning: "file holding the input manifest (YAML or JSON)",
    },
    Variable {
        name: "RUNNER_CONTEXT_NAME",
        required: Required::Yes,
        default: None,
        meaning: "the action's name: names what the runner creates and the status ConfigMap. \
                  RFC 1123 subdomain (the Argo runner also needs an RFC 1123 label, at most 63 \
                  characters, because Argo labels pods with the Workflow name)",
    },
    Variable {
        name: "RUNNER_CONTEXT_DRY_RUN",
        required: Required::No,
        default: Some("`false`"),
        meaning: "validate on the server (`dryRun=All`), persist nothing",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_NAMESPACE",
        required: Required::Yes,
        default: None,
        meaning: "namespace of everything the runner creates; RFC 1123 label",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME",
        required: Required::No,
        default: None,
        meaning: "ServiceAccount the action's workloads run as (Argo: `spec.serviceAccountName` \
                  when the spec sets none)",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_OWNER_NAME",
        required: Required::No,
        default: None,
        meaning: "name of the owner set as `ownerReference` (with `controller: true`) on created \
                  objects, e.g. the runner's Job; needs `..._OWNER_UID`",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_OWNER_UID",
        required: Required::No,
        default: None,
        meaning: "its `uid`; in a Job's pod template use the downward API: \
                  `metadata.labels['batch.kubernetes.io/controller-uid']`",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_OWNER_API_VERSION",
        required: Required::No,
        default: Some("`batch/v1`"),
        meaning: "its `apiVersion`",
    },
    Variable {
        name: "RUNNER_CONTEXT_PLATFORM_OWNER_KIND",
        required: Required::No,
        default: Some("`Job`"),
        meaning: "its `kind`",
    },
    Variable {
        name: "RUNNER_TIMEOUT",
        required: Required::No,
        default: Some("no bound"),
        meaning: "bound on the whole action from its first request: starting it (for Helm: \
                  reading values, pulling the chart, reading the history) and waiting for \
                  completion; when it elapses the runner reports `DeadlineExceeded`, exits 1 and \
                  leaves the action running (helm-runner instead stops helm with SIGTERM, so \
                  that Helm records the release `failed`)",
    },
    Variable {
        name: "RUNNER_LOGGER_DEV_MODE",
        required: Required::No,
        default: Some("`false`"),
        meaning: "human-readable logs at `debug` instead of JSON lines at `info`",
    },
    Variable {
        name: "RUNNER_TERMINATION_MESSAGE_PATH",
        required: Required::No,
        default: Some("`/dev/termination-log`"),
        meaning: "where the one-line failure reason is written, only if the file exists (the \
                  kubelet creates it in a pod)",
    },
    Variable {
        name: "RUST_LOG",
        required: Required::No,
        default: None,
        meaning: "`tracing` filter overriding the default level, e.g. `info,kube=debug`",
    },
    Variable {
        name: "KUBECONFIG",
        required: Required::No,
        default: None,
        meaning: "kubeconfig; in a pod the in-cluster configuration is used",
    },
];

/// Raw variables, as `envy` reads them (field `context_name` is `RUNNER_CONTEXT_NAME`).
/// Booleans and durations are kept as text and parsed by [`Config::from_vars`] so that their
/// errors name the variable.
#[derive(Debug, Deserialize)]
struct RawConfig {
    input_manifest_path: String,
    context_name: String,
    context_dry_run: Option<String>,
    context_platform_namespace: String,
    context_platform_service_account_name: Option<String>,
    context_platform_owner_api_version: Option<String>,
    context_platform_owner_kind: Option<String>,
    context_platform_owner_name: Option<String>,
    context_platform_owner_uid: Option<String>,
    logger_dev_mode: Option<String>,
    timeout: Option<String>,
    termination_message_path: Option<String>,
}

/// The common runner configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RUNNER_INPUT_MANIFEST_PATH`: file holding the runner's input manifest (YAML or JSON).
    pub input_manifest_path: PathBuf,
    /// `RUNNER_LOGGER_DEV_MODE`: human-readable debug logs instead of JSON lines.
    pub logger_dev_mode: bool,
    /// `RUNNER_TERMINATION_MESSAGE_PATH`: where the one-line failure reason is written when the
    /// file exists (default `/dev/termination-log`).
    pub termination_message_path: PathBuf,
    /// The context handed to the runner.
    pub context: ExecutionContext,
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming the first variable that is missing or invalid.
    pub fn from_env() -> Result<Self, RunnerError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the configuration from `(name, value)` pairs (all variables, prefixed or not).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming the first variable that is missing or invalid.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, RunnerError> {
        let raw: RawConfig = envy::prefixed(PREFIX)
            .from_iter(vars)
            .map_err(|e| match e {
                envy::Error::MissingValue(field) => {
                    invalid(&var_name(field), "is required but not set".into())
                }
                envy::Error::Custom(msg) => RunnerError::invalid_input(msg),
            })?;

        let input_manifest_path = required("INPUT_MANIFEST_PATH", raw.input_manifest_path)?;
        let name = required("CONTEXT_NAME", raw.context_name)?;
        validation::dns1123_subdomain(&name)
            .map_err(|e| invalid_value("CONTEXT_NAME", &name, e))?;
        let namespace = required("CONTEXT_PLATFORM_NAMESPACE", raw.context_platform_namespace)?;
        validation::dns1123_label(&namespace)
            .map_err(|e| invalid_value("CONTEXT_PLATFORM_NAMESPACE", &namespace, e))?;
        let service_account_name = non_empty(raw.context_platform_service_account_name);
        if let Some(sa) = &service_account_name {
            validation::dns1123_subdomain(sa)
                .map_err(|e| invalid_value("CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME", sa, e))?;
        }
        let owner_reference = owner_reference(
            non_empty(raw.context_platform_owner_api_version),
            non_empty(raw.context_platform_owner_kind),
            non_empty(raw.context_platform_owner_name),
            non_empty(raw.context_platform_owner_uid),
        )?;
        let dry_run = parse_bool("CONTEXT_DRY_RUN", raw.context_dry_run)?;
        let logger_dev_mode = parse_bool("LOGGER_DEV_MODE", raw.logger_dev_mode)?;
        let timeout = match non_empty(raw.timeout) {
            None => None,
            Some(text) => {
                Some(parse_go_duration(&text).map_err(|e| invalid_value("TIMEOUT", &text, e))?)
            }
        };
        let termination_message_path = non_empty(raw.termination_message_path)
            .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into())
            .into();

        Ok(Config {
            input_manifest_path: input_manifest_path.into(),
            logger_dev_mode,
            termination_message_path,
            context: ExecutionContext {
                name,
                dry_run,
                timeout,
                platform: KubernetesPlatform {
                    namespace,
                    service_account_name,
                    owner_reference,
                },
            },
        })
    }
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
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    const NOT: DurationError = DurationError::NotADuration;
    const OVERFLOW: DurationError = DurationError::Overflow;
    const LIMIT: u64 = 1 << 63;
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Err(DurationError::NotPositive);
    }
    if rest.is_empty() {
        return Err(NOT);
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        // The integer part.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u64 = 0;
        for b in rest[..digits].bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or(OVERFLOW)?;
        }
        rest = &rest[digits..];
        // The fraction: digits past what fits are dropped, as Go drops them.
        let (mut fraction, mut scale, mut fraction_digits) = (0u64, 1f64, 0usize);
        if let Some(after) = rest.strip_prefix('.') {
            fraction_digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for b in after[..fraction_digits].bytes() {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                {
                    Some(f) if f <= LIMIT => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            rest = &after[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(NOT);
        }
        // The unit: everything up to the next digit or '.'.
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(NOT),
        };
        rest = &rest[unit_len..];
        if value > LIMIT / unit {
            return Err(OVERFLOW);
        }
        value *= unit;
        if fraction > 0 {
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(OVERFLOW);
            }
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= LIMIT)
            .ok_or(OVERFLOW)?;
    }
    if negative {
        return Err(DurationError::NotPositive);
    }
    if total == LIMIT {
        return Err(OVERFLOW);
    }
    if total == 0 {
        return Err(DurationError::NotPositive);
    }
    Ok(Duration::from_nanos(total))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does (Capact reads its variables with it):
/// `1 t T TRUE true True` and `0 f F FALSE false False`; unset or empty is `false`.
/// `var` is the name without its `RUNNER_` prefix (for example `ARGO_LOGS`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming `RUNNER_<var>` and the value.
pub fn parse_bool(var: &str, value: Option<String>) -> Result<bool, RunnerError> {
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

fn owner_reference(
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    uid: Option<String>,
) -> Result<Option<OwnerReference>, RunnerError> {
    match (name, uid) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(
            &format!("{PREFIX}CONTEXT_PLATFORM_OWNER_UID"),
            "is required when RUNNER_CONTEXT_PLATFORM_OWNER_NAME is set".into(),
        )),
        (None, Some(_)) => Err(invalid(
            &format!("{PREFIX}CONTEXT_PLATFORM_OWNER_NAME"),
            "is required when RUNNER_CONTEXT_PLATFORM_OWNER_UID is set".into(),
        )),
        (Some(name), Some(uid)) => Ok(Some(OwnerReference {
            api_version: api_version.unwrap_or_else(|| "batch/v1".into()),
            kind: kind.unwrap_or_else(|| "Job".into()),
            name,
            uid,
            controller: Some(true),
            block_owner_deletion: None,
        })),
    }
}

fn var_name(field: &str) -> String {
    format!("{PREFIX}{}", field.to_ascii_uppercase())
}

fn required(suffix: &str, value: String) -> Result<String, RunnerError> {
    if value.trim().is_empty() {
        return Err(invalid(
            &format!("{PREFIX}{suffix}"),
            "is required but empty".into(),
        ));
    }
    Ok(value)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn invalid(var: &str, why: String) -> RunnerError {
    RunnerError::invalid_input(format!("invalid configuration: {var} {why}"))
}

fn invalid_value(suffix: &str, value: &str, why: impl std::fmt::Display) -> RunnerError {
    RunnerError::invalid_input(format!(
        "invalid configuration: {PREFIX}{suffix}={value:?} {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = [
            ("RUNNER_INPUT_MANIFEST_PATH", "/in.yaml"),
            ("RUNNER_CONTEXT_NAME", "act-1"),
            ("RUNNER_CONTEXT_PLATFORM_NAMESPACE", "default"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, val) in extra {
            v.retain(|(name, _)| name != k);
            v.push((k.to_string(), val.to_string()));
        }
        v
    }

    fn err(extra: &[(&str, &str)]) -> String {
        Config::from_vars(vars(extra)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(vars(&[])).unwrap();
        assert!(!c.context.dry_run);
        assert!(!c.logger_dev_mode);
        assert_eq!(c.context.timeout, None);
        assert_eq!(c.context.platform.owner_reference, None);
        assert_eq!(
            c.termination_message_path,
            PathBuf::from("/dev/termination-log")
        );
    }

    #[test]
    fn missing_required_names_the_variable() {
        for var in [
            "RUNNER_INPUT_MANIFEST_PATH",
            "RUNNER_CONTEXT_NAME",
            "RUNNER_CONTEXT_PLATFORM_NAMESPACE",
        ] {
            let v: Vec<_> = vars(&[]).into_iter().filter(|(k, _)| k != var).collect();
            let e = Config::from_vars(v).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
            let e = err(&[(var, "")]);
            assert!(e.contains(var), "{e}");
        }
    }

    #[test]
    fn durations_go_style() {
        for (text, secs) in [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400)] {
            let c = Config::from_vars(vars(&[("RUNNER_TIMEOUT", text)])).unwrap();
            assert_eq!(c.context.timeout, Some(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["10", "ten minutes", "-5s", "0s"] {
            assert!(
                err(&[("RUNNER_TIMEOUT", bad)]).contains("RUNNER_TIMEOUT"),
                "{bad}"
            );
        }
    }

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
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "2562048h",
            "2562047h47m16.854775808s",
            "9223372036854775808ns",
            "1d",
            "s",
            ".s",
            "",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_variable_table_says_what_from_vars_does() {
        let required: Vec<&str> = VARIABLES
            .iter()
            .filter(|v| v.required == Required::Yes)
            .map(|v| v.name)
            .collect();
        assert_eq!(
            required,
            [
                "RUNNER_INPUT_MANIFEST_PATH",
                "RUNNER_CONTEXT_NAME",
                "RUNNER_CONTEXT_PLATFORM_NAMESPACE"
            ]
        );
        for name in &required {
            let without: Vec<_> = vars(&[]).into_iter().filter(|(k, _)| k != name).collect();
            let e = Config::from_vars(without).unwrap_err().to_string();
            assert!(e.contains(&format!("{name} is required")), "{e}");
        }
        // Every other variable is optional, with the default the table gives.
        let c = Config::from_vars(vars(&[
            ("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", "job"),
            ("RUNNER_CONTEXT_PLATFORM_OWNER_UID", "1234"),
        ]))
        .unwrap();
        let owner = c.context.platform.owner_reference.unwrap();
        let default = |name: &str| {
            let v = VARIABLES.iter().find(|v| v.name == name).expect(name);
            assert_eq!(v.required, Required::No, "{name}");
            v.default.map(|d| d.replace('`', ""))
        };
        let termination = c.termination_message_path.display().to_string();
        for (name, used) in [
            ("RUNNER_CONTEXT_DRY_RUN", c.context.dry_run.to_string()),
            ("RUNNER_LOGGER_DEV_MODE", c.logger_dev_mode.to_string()),
            ("RUNNER_TERMINATION_MESSAGE_PATH", termination),
            (
                "RUNNER_CONTEXT_PLATFORM_OWNER_API_VERSION",
                owner.api_version,
            ),
            ("RUNNER_CONTEXT_PLATFORM_OWNER_KIND", owner.kind),
        ] {
            assert_eq!(default(name), Some(used), "{name}");
        }
        assert_eq!(c.context.timeout, None);
        assert_eq!(default("RUNNER_TIMEOUT").as_deref(), Some("no bound"));
    }

    #[test]
    fn booleans_like_go() {
        let c = Config::from_vars(vars(&[("RUNNER_CONTEXT_DRY_RUN", "True")])).unwrap();
        assert!(c.context.dry_run);
        assert!(err(&[("RUNNER_CONTEXT_DRY_RUN", "yes")]).contains("RUNNER_CONTEXT_DRY_RUN"));
        assert!(err(&[("RUNNER_LOGGER_DEV_MODE", "2")]).contains("RUNNER_LOGGER_DEV_MODE"));
    }

    #[test]
    fn names_are_validated() {
        assert!(
            err(&[("RUNNER_CONTEXT_PLATFORM_NAMESPACE", "Bad_NS")])
                .contains("RUNNER_CONTEXT_PLATFORM_NAMESPACE")
        );
        assert!(err(&[("RUNNER_CONTEXT_NAME", "UPPER")]).contains("RUNNER_CONTEXT_NAME"));
        assert!(
            err(&[("RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME", "a b")])
                .contains("RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME")
        );
    }

    #[test]
    fn owner_reference_needs_name_and_uid() {
        assert!(
            err(&[("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", "job")])
                .contains("RUNNER_CONTEXT_PLATFORM_OWNER_UID")
        );
        let c = Config::from_vars(vars(&[
            ("RUNNER_CONTEXT_PLATFORM_OWNER_NAME", "job"),
            ("RUNNER_CONTEXT_PLATFORM_OWNER_UID", "1234"),
        ]))
        .unwrap();
        let o = c.context.platform.owner_reference.unwrap();
        assert_eq!(
            (o.api_version.as_str(), o.kind.as_str()),
            ("batch/v1", "Job")
        );
    }
}
