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
    /// [`RunnerError::InvalidInput`] naming the first variable that is missing or invalid.
    pub fn from_env() -> Result<Self, RunnerError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the configuration from `(name, value)` pairs (all variables, prefixed or not).
    ///
    /// # Errors
    /// [`RunnerError::InvalidInput`] naming the first variable that is missing or invalid.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, RunnerError> {
        let raw: RawConfig = envy::prefixed(PREFIX)
            .from_iter(vars)
            .map_err(|e| match e {
                envy::Error::MissingValue(field) => {
                    invalid(&var_name(field), "is required but not set".into())
                }
                envy::Error::Custom(msg) => RunnerError::InvalidInput(msg),
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

/// Parses a Go `time.ParseDuration` string (`90s`, `10m`, `1h30m`, `1.5h`, `500ms`) into a
/// positive [`Duration`]. Units: `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
///
/// # Errors
/// A sentence when the text is not a Go duration or is not positive.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let nanos = go_parse_duration::parse_duration(text)
        .map_err(|_| "is not a Go duration (examples: 90s, 10m, 1h30m)".to_string())?;
    if nanos <= 0 {
        return Err("must be a positive duration".into());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does (Capact reads its variables with it):
/// `1 t T TRUE true True` and `0 f F FALSE false False`; unset or empty is `false`.
fn parse_bool(var: &str, value: Option<String>) -> Result<bool, RunnerError> {
    match non_empty(value).as_deref() {
        None => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(invalid_value(
            var,
            other,
            "is not a boolean (true or false)".into(),
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
    RunnerError::InvalidInput(format!("invalid configuration: {var} {why}"))
}

fn invalid_value(suffix: &str, value: &str, why: String) -> RunnerError {
    RunnerError::InvalidInput(format!(
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
