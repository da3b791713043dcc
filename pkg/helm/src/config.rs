//! The Helm runner's own `RUNNER_*` variables (the common ones are read by
//! [`action_runner::Config`]): [`HelmVars`] as the Manager reads them, [`HelmConfig`] once
//! checked.

use std::path::{Path, PathBuf};

use action_runner::vars::{invalid, invalid_value, non_empty};
use action_runner::{ProcessEnv, Required, RunnerError, Variable};
use serde::Deserialize;

/// Default of `RUNNER_HELM_DRIVER` (Helm's own default storage driver, `HELM_DRIVER`).
pub const DEFAULT_DRIVER: &str = "secrets";
/// Default of `RUNNER_REPOSITORY_CACHE_PATH`.
pub const DEFAULT_REPOSITORY_CACHE_PATH: &str = "/tmp/helm";
/// Default of `RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`.
pub const DEFAULT_RELEASE_OUTPUT_PATH: &str = "/tmp/helm-release.yaml";
/// Default of `RUNNER_OUTPUT_ADDITIONAL_FILE_PATH`.
pub const DEFAULT_ADDITIONAL_OUTPUT_PATH: &str = "/tmp/additional.yaml";
/// Default of `RUNNER_HELM_BINARY_PATH`: `helm`, looked up on `PATH`.
pub const DEFAULT_HELM_BINARY: &str = "helm";

/// The variables helm-runner reads besides the common ones: what `helm-runner --help` lists and
/// `cmd/helm-runner/README.md`'s table shows (a test checks that the table is this one).
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "RUNNER_COMMAND",
        required: Required::Yes,
        default: None,
        meaning: "`install`, `upgrade`, `uninstall` or `rollback`: what to do with the release",
    },
    Variable {
        name: "RUNNER_HELM_RELEASE_PATH",
        required: Required::When("for `upgrade`, `uninstall`, `rollback`"),
        default: None,
        meaning: "release file naming the release to act on: `value: {name, namespace, chart: \
                  {name, repo, version}}` (what an install, upgrade or rollback writes to \
                  `RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`)",
    },
    Variable {
        name: "RUNNER_HELM_DRIVER",
        required: Required::No,
        default: Some("`secrets`"),
        meaning: "Helm's release storage (`HELM_DRIVER`): `secrets`/`secret` (a Secret per \
                  revision) or `configmap`/`configmaps`",
    },
    Variable {
        name: "RUNNER_REPOSITORY_CACHE_PATH",
        required: Required::No,
        default: Some("`/tmp/helm`"),
        meaning: "Helm's repository cache (`HELM_REPOSITORY_CACHE`; a private chart \
                  repository's, with `chart.auth`, is in the run's scratch directory instead)",
    },
    Variable {
        name: "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
        required: Required::No,
        default: Some("`/tmp/helm-release.yaml`"),
        meaning: "where the release file is written; its directory must exist",
    },
    Variable {
        name: "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
        required: Required::No,
        default: Some("`/tmp/additional.yaml`"),
        meaning: "where the additional output is written (only when a goTemplate is given); its \
                  directory must exist",
    },
    Variable {
        name: "RUNNER_HELM_BINARY_PATH",
        required: Required::No,
        default: Some("`helm` on `PATH`"),
        meaning: "the helm CLI: Helm 4 (the image's) or Helm 3",
    },
];

/// `RUNNER_COMMAND`: what the runner does with the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `install`: `helm install` a new release in the platform namespace.
    Install,
    /// `upgrade`: `helm upgrade` the release named by `RUNNER_HELM_RELEASE_PATH`.
    Upgrade,
    /// `uninstall`: `helm uninstall` the release named by `RUNNER_HELM_RELEASE_PATH`; a release
    /// that is already gone is a success.
    Uninstall,
    /// `rollback`: `helm rollback` the release named by `RUNNER_HELM_RELEASE_PATH` to the
    /// manifest's `revision` (absent or 0: the previous revision, as Helm counts it).
    Rollback,
}

/// The words `RUNNER_COMMAND` accepts, for messages.
const COMMANDS: &str = "install, upgrade, uninstall or rollback";

impl Command {
    /// The four commands, in the order messages list them.
    pub const ALL: [Command; 4] = [
        Command::Install,
        Command::Upgrade,
        Command::Uninstall,
        Command::Rollback,
    ];

    /// The command `RUNNER_COMMAND=<value>` names, exactly as [`as_str`](Self::as_str) spells
    /// it; `None` for anything else.
    pub fn from_name(value: &str) -> Option<Command> {
        Self::ALL.into_iter().find(|c| c.as_str() == value)
    }

    /// `install`, `upgrade`, `uninstall` or `rollback`: the value of `RUNNER_COMMAND`, and
    /// helm's subcommand.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Install => "install",
            Command::Upgrade => "upgrade",
            Command::Uninstall => "uninstall",
            Command::Rollback => "rollback",
        }
    }

    /// What the command does to a release, in words for messages ("the release to ..."):
    /// `install`, `upgrade`, `uninstall`, `roll back`.
    pub fn action(self) -> &'static str {
        match self {
            Command::Rollback => "roll back",
            other => other.as_str(),
        }
    }

    /// Whether the command acts on an existing release, named by the release file
    /// (`RUNNER_HELM_RELEASE_PATH`): every command but `install`.
    pub fn needs_release_file(self) -> bool {
        !matches!(self, Command::Install)
    }
}

/// helm-runner's own variables, as the Manager reads them
/// ([`ActionRunner::Config`](action_runner::ActionRunner::Config)): text, checked by
/// [`HelmConfig::new`] (in `prepare`, and to pick the manifest's shape) so that an error names
/// the variable. Empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HelmVars {
    /// `RUNNER_COMMAND`.
    pub command: Option<String>,
    /// `RUNNER_HELM_RELEASE_PATH`.
    pub helm_release_path: Option<String>,
    /// `RUNNER_HELM_DRIVER`.
    pub helm_driver: Option<String>,
    /// `RUNNER_REPOSITORY_CACHE_PATH`.
    pub repository_cache_path: Option<String>,
    /// `RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`.
    pub output_helm_release_file_path: Option<String>,
    /// `RUNNER_OUTPUT_ADDITIONAL_FILE_PATH`.
    pub output_additional_file_path: Option<String>,
    /// `RUNNER_HELM_BINARY_PATH`.
    pub helm_binary_path: Option<String>,
}

/// The Helm runner's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmConfig {
    /// `RUNNER_COMMAND` (required): `install`, `upgrade`, `uninstall` or `rollback`.
    pub command: Command,
    /// `RUNNER_HELM_RELEASE_PATH`: the release file naming the release to upgrade, uninstall or
    /// roll back (required for every command but `install`).
    pub release_path: Option<PathBuf>,
    /// `RUNNER_HELM_DRIVER` (default `secrets`): Helm's release storage driver, passed to helm
    /// as `HELM_DRIVER`. `secret`/`secrets` store a release as a Secret, `configmap`/`configmaps`
    /// as a ConfigMap (`pkg/action.Configuration.Init` in `helm.sh/helm/v3` and `helm.sh/helm/v4`).
    pub driver: String,
    /// `RUNNER_REPOSITORY_CACHE_PATH` (default `/tmp/helm`): Helm's repository cache
    /// (`HELM_REPOSITORY_CACHE`), where chart repository indexes are kept.
    pub repository_cache: PathBuf,
    /// `RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH` (default `/tmp/helm-release.yaml`).
    pub release_output: PathBuf,
    /// `RUNNER_OUTPUT_ADDITIONAL_FILE_PATH` (default `/tmp/additional.yaml`).
    pub additional_output: PathBuf,
    /// `RUNNER_HELM_BINARY_PATH` (default `helm` on `PATH`): the helm CLI, Helm 4 or
    /// Helm 3 (its version is read when the run starts), resolved to a file.
    pub helm_binary: PathBuf,
    /// `KUBECONFIG`, when it names one file: handed to helm as `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

impl HelmConfig {
    /// Checks helm-runner's variables (`vars`); `process` gives the `PATH` helm is looked up on
    /// and the `KUBECONFIG` helm is handed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the variable at fault:
    /// `RUNNER_COMMAND` missing or not `install`/`upgrade`/`uninstall`/`rollback`;
    /// `RUNNER_HELM_RELEASE_PATH` missing for a command other than `install`;
    /// `RUNNER_HELM_DRIVER` not a driver Helm stores releases in the cluster with;
    /// `RUNNER_HELM_BINARY_PATH` not found; an output path whose directory does not exist.
    pub fn new(vars: &HelmVars, process: &ProcessEnv) -> Result<Self, RunnerError> {
        let set = |value: &Option<String>| non_empty(value.clone());
        let command = command(set(&vars.command))?;
        let release_path = set(&vars.helm_release_path).map(PathBuf::from);
        if command.needs_release_file() && release_path.is_none() {
            return Err(invalid(format!(
                "RUNNER_HELM_RELEASE_PATH is required when RUNNER_COMMAND={} (the release file \
                 naming the release to {})",
                command.as_str(),
                command.action()
            )));
        }
        Ok(HelmConfig {
            command,
            release_path,
            driver: driver(set(&vars.helm_driver))?,
            repository_cache: set(&vars.repository_cache_path)
                .unwrap_or_else(|| DEFAULT_REPOSITORY_CACHE_PATH.into())
                .into(),
            release_output: output_path(
                "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                set(&vars.output_helm_release_file_path),
                DEFAULT_RELEASE_OUTPUT_PATH,
            )?,
            additional_output: output_path(
                "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                set(&vars.output_additional_file_path),
                DEFAULT_ADDITIONAL_OUTPUT_PATH,
            )?,
            helm_binary: helm_binary(set(&vars.helm_binary_path), set(&process.path).as_deref())?,
            kubeconfig: process
                .kubeconfig
                .as_deref()
                .filter(|k| !k.is_empty() && !k.contains(':'))
                .map(PathBuf::from),
        })
    }
}

/// `RUNNER_COMMAND`, `set` or not.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the variable and the
/// commands when it is unset or not one of them.
fn command(set: Option<String>) -> Result<Command, RunnerError> {
    let Some(name) = set else {
        return Err(invalid(format!(
            "RUNNER_COMMAND is required but not set: use {COMMANDS}"
        )));
    };
    Command::from_name(&name).ok_or_else(|| {
        invalid_value(
            "RUNNER_COMMAND",
            &name,
            format!("is not a command: use {COMMANDS}"),
        )
    })
}

/// `RUNNER_HELM_DRIVER` (`set`, else [`DEFAULT_DRIVER`]).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the variable when it is
/// not a driver that stores releases in the cluster.
fn driver(set: Option<String>) -> Result<String, RunnerError> {
    let driver = set.unwrap_or_else(|| DEFAULT_DRIVER.into());
    match driver.as_str() {
        "secret" | "secrets" | "configmap" | "configmaps" => Ok(driver),
        _ => Err(invalid_value(
            "RUNNER_HELM_DRIVER",
            &driver,
            "is not supported: use secrets (default) or configmap",
        )),
    }
}

/// The output file `var` names (`value`, else `default`).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming `var` when the file's
/// directory does not exist.
fn output_path(var: &str, value: Option<String>, default: &str) -> Result<PathBuf, RunnerError> {
    let path = PathBuf::from(value.unwrap_or_else(|| default.into()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if dir.is_some_and(|d| !d.is_dir()) {
        return Err(invalid(format!(
            "{var}={}: directory {} does not exist",
            path.display(),
            dir.unwrap_or(Path::new(".")).display()
        )));
    }
    Ok(path)
}

/// The helm CLI: `RUNNER_HELM_BINARY_PATH` (`set`; a bare name is looked up on `PATH`), else
/// `helm` on `PATH`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the variable when no
/// such file exists.
fn helm_binary(set: Option<String>, path: Option<&str>) -> Result<PathBuf, RunnerError> {
    let Some(p) = set else {
        return find_on_path(DEFAULT_HELM_BINARY, path).ok_or_else(|| {
            invalid(
                "the helm CLI `helm` (Helm 4 or 3) is not on PATH: install it or set \
                 RUNNER_HELM_BINARY_PATH",
            )
        });
    };
    let given = PathBuf::from(&p);
    let resolved = if given.components().count() > 1 {
        given.is_file().then_some(given)
    } else {
        find_on_path(&p, path)
    };
    resolved.ok_or_else(|| {
        invalid(format!(
            "RUNNER_HELM_BINARY_PATH={p:?}: no such file (the helm CLI, Helm 4 or 3)"
        ))
    })
}

/// The first file named `name` in the `:`-separated directories of `path`.
fn find_on_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    path?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("RUNNER_HELM_BINARY_PATH".into(), "/bin/sh".into()),
            (
                "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH".into(),
                "/tmp/r.yaml".into(),
            ),
            (
                "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH".into(),
                "/tmp/a.yaml".into(),
            ),
        ];
        for (k, val) in pairs {
            v.retain(|(name, _)| name != k);
            v.push((k.to_string(), val.to_string()));
        }
        v
    }

    /// The configuration `pairs` describe, read as the Manager reads it.
    fn config(pairs: Vec<(String, String)>) -> Result<HelmConfig, RunnerError> {
        let own: HelmVars = action_runner::vars::read(&pairs)?;
        HelmConfig::new(&own, &ProcessEnv::from_vars(&pairs))
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        config(vars(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn the_variable_table_has_the_defaults_used() {
        let default = |name: &str| {
            let v = VARIABLES.iter().find(|v| v.name == name).expect(name);
            v.default.map(|d| d.replace('`', ""))
        };
        for (name, used) in [
            ("RUNNER_HELM_DRIVER", DEFAULT_DRIVER),
            (
                "RUNNER_REPOSITORY_CACHE_PATH",
                DEFAULT_REPOSITORY_CACHE_PATH,
            ),
            (
                "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
                DEFAULT_RELEASE_OUTPUT_PATH,
            ),
            (
                "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                DEFAULT_ADDITIONAL_OUTPUT_PATH,
            ),
            (
                "RUNNER_HELM_BINARY_PATH",
                &format!("{DEFAULT_HELM_BINARY} on PATH"),
            ),
        ] {
            assert_eq!(default(name).as_deref(), Some(used), "{name}");
        }
    }

    #[test]
    fn defaults() {
        let c = config(vars(&[("RUNNER_COMMAND", "install")])).unwrap();
        assert_eq!(c.command, Command::Install);
        assert_eq!(c.driver, "secrets");
        assert_eq!(c.repository_cache, PathBuf::from("/tmp/helm"));
        assert_eq!(c.release_path, None);
        assert_eq!(c.helm_binary, PathBuf::from("/bin/sh"));
    }

    #[test]
    fn command_is_required_and_known() {
        assert!(err(&[]).contains("RUNNER_COMMAND is required"));
        let e = err(&[("RUNNER_COMMAND", "delete")]);
        assert!(e.contains("RUNNER_COMMAND=\"delete\""), "{e}");
        assert!(e.contains("install, upgrade, uninstall or rollback"), "{e}");
    }

    #[test]
    fn upgrade_uninstall_rollback_need_release_path() {
        for command in ["upgrade", "uninstall", "rollback"] {
            let e = err(&[("RUNNER_COMMAND", command)]);
            assert!(
                e.contains(&format!(
                    "RUNNER_HELM_RELEASE_PATH is required when RUNNER_COMMAND={command}"
                )),
                "{e}"
            );
        }
        for (text, command) in [
            ("uninstall", Command::Uninstall),
            ("rollback", Command::Rollback),
        ] {
            let c = config(vars(&[
                ("RUNNER_COMMAND", text),
                ("RUNNER_HELM_RELEASE_PATH", "/r.yaml"),
            ]))
            .unwrap();
            assert_eq!(c.command, command);
            assert_eq!(c.command.as_str(), text);
        }
        let c = config(vars(&[
            ("RUNNER_COMMAND", "upgrade"),
            ("RUNNER_HELM_RELEASE_PATH", "/r.yaml"),
        ]))
        .unwrap();
        assert_eq!(c.release_path, Some(PathBuf::from("/r.yaml")));
    }

    #[test]
    fn driver_binary_and_outputs_are_checked() {
        let install = ("RUNNER_COMMAND", "install");
        assert!(err(&[install, ("RUNNER_HELM_DRIVER", "sql")]).contains("RUNNER_HELM_DRIVER"));
        assert!(
            err(&[install, ("RUNNER_HELM_BINARY_PATH", "/nonexistent/helm")])
                .contains("RUNNER_HELM_BINARY_PATH")
        );
        assert!(
            err(&[
                install,
                ("RUNNER_OUTPUT_ADDITIONAL_FILE_PATH", "/nonexistent/a.yaml")
            ])
            .contains("RUNNER_OUTPUT_ADDITIONAL_FILE_PATH")
        );
        let c = config(vars(&[
            install,
            ("RUNNER_HELM_BINARY_PATH", "sh"),
            ("PATH", "/nonexistent:/bin"),
            ("RUNNER_HELM_DRIVER", "configmap"),
        ]))
        .unwrap();
        assert_eq!(c.helm_binary, PathBuf::from("/bin/sh"));
        assert_eq!(c.driver, "configmap");
    }

    /// helm gets `--kubeconfig` when `KUBECONFIG` names one file.
    #[test]
    fn a_single_kubeconfig_is_handed_to_helm() {
        let install = ("RUNNER_COMMAND", "install");
        for (kubeconfig, want) in [("/k.yaml", Some("/k.yaml")), ("/a:/b", None), ("", None)] {
            let c = config(vars(&[install, ("KUBECONFIG", kubeconfig)])).unwrap();
            assert_eq!(c.kubeconfig, want.map(PathBuf::from), "{kubeconfig:?}");
        }
    }
}
