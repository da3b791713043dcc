//! The `RUNNER_*` environment variables every runner reads, parsed with `envy` and the shared
//! parsers of [`crate::vars`], and the few other variables of the process the framework and the
//! runners use ([`ProcessEnv`]). The [`Manager`](crate::Manager) reads them once, with the
//! runner's own ([`ActionRunner::Config`](crate::ActionRunner::Config)).
//!
//! The variable set follows Capact's action-runner contract; see the README's table.

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;

use crate::context::{ExecutionContext, KubernetesPlatform};
use crate::error::RunnerError;
use crate::validation;
use crate::vars::{self, invalid, invalid_value, non_empty, required};

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
#[derive(Debug, Clone, PartialEq)]
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
    /// The other variables of the process that the framework and the runners use.
    pub process: ProcessEnv,
}

/// The variables of the process, outside `RUNNER_*`, that the framework and the runners use:
/// read with the rest, so that nothing below the Manager reads the environment. Each is kept as
/// it is set (`None` when unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessEnv {
    /// `KUBECONFIG`: the kubeconfig file(s), `:`-separated (the Kubernetes client infers its
    /// configuration from it; helm-runner hands a single file to helm).
    pub kubeconfig: Option<String>,
    /// `HOSTNAME`: in a pod, the pod's name; the instance that reports the Events.
    pub hostname: Option<String>,
    /// `PATH`: where programs are looked up (helm-runner's `helm`).
    pub path: Option<String>,
    /// `RUST_LOG`: the `tracing` filter overriding the default level ([`crate::logging`]).
    pub rust_log: Option<String>,
}

impl ProcessEnv {
    /// The variables among `(name, value)` pairs.
    pub fn from_vars(vars: &[(String, String)]) -> Self {
        let get = |name: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        ProcessEnv {
            kubeconfig: get("KUBECONFIG"),
            hostname: get("HOSTNAME"),
            path: get("PATH"),
            rust_log: get("RUST_LOG"),
        }
    }
}

impl Config {
    /// Reads the configuration from `(name, value)` pairs (all variables, prefixed or not): the
    /// process environment, as the Manager reads it, or a test's.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming the first variable that is
    /// missing or invalid.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, RunnerError> {
        let raw: RawConfig = vars::read(vars)?;
        let input_manifest_path = required(
            "RUNNER_INPUT_MANIFEST_PATH",
            raw.input_manifest_path.clone(),
        )?;
        let mut context = context(&raw)?;
        let logger_dev_mode = vars::boolean("RUNNER_LOGGER_DEV_MODE", raw.logger_dev_mode.clone())?;
        context.timeout = vars::duration("RUNNER_TIMEOUT", raw.timeout.clone())?;
        let termination_message_path = non_empty(raw.termination_message_path)
            .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into())
            .into();
        Ok(Config {
            input_manifest_path: input_manifest_path.into(),
            logger_dev_mode,
            termination_message_path,
            context,
            process: ProcessEnv::from_vars(vars),
        })
    }
}

/// The execution context the variables describe, but its timeout: [`Config::from_vars`] reads
/// `RUNNER_TIMEOUT` after `RUNNER_LOGGER_DEV_MODE`, so that of two bad variables the same one is
/// named first as it always was.
fn context(raw: &RawConfig) -> Result<ExecutionContext, RunnerError> {
    let name = required("RUNNER_CONTEXT_NAME", raw.context_name.clone())?;
    validation::dns1123_subdomain(&name)
        .map_err(|e| invalid_value("RUNNER_CONTEXT_NAME", &name, e))?;
    let namespace = required(
        "RUNNER_CONTEXT_PLATFORM_NAMESPACE",
        raw.context_platform_namespace.clone(),
    )?;
    validation::dns1123_label(&namespace)
        .map_err(|e| invalid_value("RUNNER_CONTEXT_PLATFORM_NAMESPACE", &namespace, e))?;
    let service_account_name = non_empty(raw.context_platform_service_account_name.clone());
    if let Some(sa) = &service_account_name {
        validation::dns1123_subdomain(sa)
            .map_err(|e| invalid_value("RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME", sa, e))?;
    }
    let owner = |value: &Option<String>| non_empty(value.clone());
    let owner_reference = owner_reference(
        owner(&raw.context_platform_owner_api_version),
        owner(&raw.context_platform_owner_kind),
        owner(&raw.context_platform_owner_name),
        owner(&raw.context_platform_owner_uid),
    )?;
    Ok(ExecutionContext {
        name,
        dry_run: vars::boolean("RUNNER_CONTEXT_DRY_RUN", raw.context_dry_run.clone())?,
        timeout: None,
        platform: KubernetesPlatform {
            namespace,
            service_account_name,
            owner_reference,
        },
    })
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
            "RUNNER_CONTEXT_PLATFORM_OWNER_UID is required when RUNNER_CONTEXT_PLATFORM_OWNER_NAME \
             is set",
        )),
        (None, Some(_)) => Err(invalid(
            "RUNNER_CONTEXT_PLATFORM_OWNER_NAME is required when RUNNER_CONTEXT_PLATFORM_OWNER_UID \
             is set",
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        Config::from_vars(&vars(extra)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(&vars(&[])).unwrap();
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
            let e = Config::from_vars(&v).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
            let e = err(&[(var, "")]);
            assert!(e.contains(var), "{e}");
        }
    }

    #[test]
    fn durations_go_style() {
        for (text, secs) in [("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400)] {
            let c = Config::from_vars(&vars(&[("RUNNER_TIMEOUT", text)])).unwrap();
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
            let e = Config::from_vars(&without).unwrap_err().to_string();
            assert!(e.contains(&format!("{name} is required")), "{e}");
        }
        // Every other variable is optional, with the default the table gives.
        let c = Config::from_vars(&vars(&[
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
        let c = Config::from_vars(&vars(&[("RUNNER_CONTEXT_DRY_RUN", "True")])).unwrap();
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
        let c = Config::from_vars(&vars(&[
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

    /// The process's own variables are read with the rest, as they are set.
    #[test]
    fn the_process_variables_are_read_with_the_rest() {
        let c = Config::from_vars(&vars(&[
            ("KUBECONFIG", "/a:/b"),
            ("HOSTNAME", "runner-x1"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(
            c.process,
            ProcessEnv {
                kubeconfig: Some("/a:/b".into()),
                hostname: Some("runner-x1".into()),
                path: Some("/bin".into()),
                rust_log: None,
            }
        );
    }
}
