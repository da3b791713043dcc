//! One module per Helm command, each behind the `Verb` trait, as Flux's helm-controller keeps
//! one file per Helm action (`internal/action/install.go`, `upgrade.go`, `uninstall.go`,
//! `rollback.go` of `github.com/fluxcd/helm-controller`): [`install`] (install and upgrade,
//! which share nearly all their steps), [`uninstall`] and [`rollback`]. A verb is what differs between the commands: its
//! input (a struct of its own, so that another command's field is refused while the manifest is
//! parsed, see [`crate::manifest`]), which release it acts on, what it decides from the
//! release's history before helm runs, helm's arguments, and what a successful helm leaves to
//! report. What every command shares stays with [`HelmRunner`](crate::HelmRunner), which hands
//! each step over: the redactor, helm's version, the release's history, spawning and stopping
//! helm, the report of a failed helm and its diagnosis.
//!
//! The steps, in the order they run (each verb's module reads in the same order):
//!
//! 1. `Verb::prepare` (in [`ActionRunner::prepare`](action_runner::ActionRunner::prepare), no
//!    cluster): the release, the local files the input names, the secrets to redact;
//! 2. (install and upgrade only, in `start`, before helm is asked anything: `valuesFrom`, read
//!    from the cluster, `install::ChartVerb::read_sources`);
//! 3. `Verb::plan` (in `start`): from the release's history, whether helm runs;
//! 4. `Verb::args`: helm's arguments for that plan;
//! 5. `Verb::outcome` (in `wait_for_completion`, once helm succeeded or was not needed): what
//!    Helm stored, checked, the output files, the final status.

pub mod install;
pub mod rollback;
pub mod test;
pub mod uninstall;

use std::ffi::OsString;

use action_runner::{
    ExecutionContext, RunnerError, StartInput, WaitForCompletionInput, WaitForCompletionOutput,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::{Helm, Redactor};
use crate::config::{Command, HelmConfig};
use crate::input::{self, Chart};
use crate::manifest::HelmInput;
use crate::output::{self, ReleaseRef};
use crate::storage::Record;
use crate::version::HelmVersion;

/// The release a run acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Its name: the manifest's (install; `None` with `generateName` until an earlier attempt
    /// of the action is found to have named it), or the release file's.
    pub name: Option<String>,
    /// Its namespace: the platform namespace (install) or the release file's.
    pub namespace: String,
}

impl Target {
    /// The release's name, or an empty string when Helm is to generate it.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// How errors and logs name helm's operation on `target`: `helm install apps/shop`, or `helm
/// install (generated name) in namespace apps`.
pub(crate) fn what(command: Command, target: &Target) -> String {
    let (verb, ns) = (command.as_str(), &target.namespace);
    match &target.name {
        Some(name) => format!("helm {verb} {ns}/{name}"),
        None => format!("helm {verb} (generated name) in namespace {ns}"),
    }
}

/// What a run does, as [`Verb::plan`] decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Run helm with [`Verb::args`]; its standard output goes to [`Verb::outcome`].
    Run,
    /// Run no helm: an earlier attempt of this action made this revision
    /// ([`Decision::Adopt`](crate::ownership::Decision)); its release JSON stands for helm's
    /// output.
    Adopt(Record),
    /// Run no helm: there is nothing to do (an uninstall of a release already gone);
    /// [`Verb::outcome`] says why.
    Skip,
}

/// What [`Verb::prepare`] works with besides the verb's input.
pub(crate) struct PrepareCx<'a> {
    /// The action's context (the platform namespace an install goes to).
    pub ctx: &'a ExecutionContext,
    /// The runner's variables.
    pub config: &'a HelmConfig,
    /// Where the secrets found go.
    pub redactor: &'a mut Redactor,
}

/// What a verb's steps in `start` and `wait_for_completion` work with: the run's shared pieces
/// and the framework's input of the step (`I`).
pub(crate) struct Cx<'a, I> {
    /// The runner's variables.
    pub config: &'a HelmConfig,
    /// The release; [`Verb::plan`] may name it (a generated name an earlier attempt got).
    pub target: &'a mut Target,
    /// The helm CLI, with the redactor of everything secret read so far.
    pub helm: &'a mut Helm,
    /// helm's version.
    pub version: &'a HelmVersion,
    /// The framework's input of the step: the context, the client and more.
    pub input: &'a I,
}

/// [`Cx`] of `start`.
pub(crate) type StartCx<'a> = Cx<'a, StartInput<HelmInput>>;

/// [`Cx`] of `wait_for_completion`.
pub(crate) type WaitCx<'a> = Cx<'a, WaitForCompletionInput>;

/// How an action ended, or why that could not be told ([`Verb::outcome`]).
pub(crate) type Outcome = Result<WaitForCompletionOutput, RunnerError>;

/// One Helm command's own steps; see the module's list. Implemented by
/// [`install::ChartVerb`] (install and upgrade), [`uninstall::Uninstall`] and
/// [`rollback::Rollback`].
pub(crate) trait Verb: Sized {
    /// The command's shape of the input manifest.
    type Input;

    /// Step 1: checks `input` and reads the local files it names (the release file, values
    /// files, credential files), without the cluster; adds the secrets found to the redactor.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field, file or
    /// variable at fault.
    fn prepare(cx: PrepareCx<'_>, input: &Self::Input) -> Result<(Self, Target), RunnerError>;

    /// Step 3: what this run does, from `history`, the release's records (oldest first; read
    /// for every command but install, whose verb reads what it needs itself).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) when the history rules the
    /// input out (nothing is written then); errors of what the verb reads or writes.
    async fn plan(&mut self, cx: StartCx<'_>, history: Vec<Record>) -> Result<Plan, RunnerError>;

    /// Step 4: helm's arguments for [`Plan::Run`], without the cluster flags
    /// ([`Helm::cluster_args`], which the caller appends).
    fn args(&self, target: &Target, version: &HelmVersion, dry_run: bool) -> Vec<OsString>;

    /// Whether helm waits for the release's workloads (so that a failed wait is diagnosed).
    fn waits(&self, dry_run: bool) -> bool;

    /// What the verb adds to the status reported when helm starts (`phase`, `release` and
    /// `helmVersion` are the runner's). Nothing by default.
    fn status(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Step 5, once helm succeeded (`stdout`: its standard output, or the adopted revision's
    /// release JSON) or did not run ([`Plan::Skip`]: `None`): checks what Helm stored, writes the
    /// output files and says how the action ended.
    ///
    /// # Errors
    /// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when Helm's storage does not hold
    /// what helm reported, or an output file cannot be written; errors of the reads.
    async fn outcome(&mut self, cx: WaitCx<'_>, stdout: Option<Vec<u8>>) -> Outcome;
}

/// `--no-hooks` (`no_hooks`) and the wait flags of helm's major version for `wait`
/// ([`HelmVersion::wait_args`]), added to `argv`, as every command passes them.
pub(crate) fn hooks_and_wait(
    argv: &mut Vec<OsString>,
    version: &HelmVersion,
    no_hooks: bool,
    wait: bool,
) {
    if no_hooks {
        argv.push("--no-hooks".into());
    }
    argv.extend(version.wait_args(wait).into_iter().map(OsString::from));
}

/// Where a run is, for the `phase` of the runner status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// helm runs (or is about to).
    Running,
    /// The action succeeded.
    Done,
    /// helm failed.
    Failed,
}

/// The `phase` of the runner status: `Installing`, `Installed`, `InstallFailed`; `Upgrading`,
/// `Upgraded`, `UpgradeFailed`; `Uninstalling`, `Uninstalled`, `UninstallFailed`;
/// `RollingBack`, `RolledBack`, `RollbackFailed`.
pub(crate) fn phase(command: Command, stage: Stage) -> &'static str {
    let [running, done, failed] = match command {
        Command::Install => ["Installing", "Installed", "InstallFailed"],
        Command::Upgrade => ["Upgrading", "Upgraded", "UpgradeFailed"],
        Command::Uninstall => ["Uninstalling", "Uninstalled", "UninstallFailed"],
        Command::Rollback => ["RollingBack", "RolledBack", "RollbackFailed"],
    };
    match stage {
        Stage::Running => running,
        Stage::Done => done,
        Stage::Failed => failed,
    }
}

/// The parts of Helm's release JSON (`helm install -o json`, and a record's release; `pkg/release`
/// of `helm.sh/helm/v3` and `pkg/release/v1` of `helm.sh/helm/v4`, the same fields in both) the
/// runner reads. `config` holds the release's user-supplied values: never logged.
#[derive(Deserialize)]
pub(crate) struct HelmRelease {
    pub name: String,
    pub namespace: String,
    /// The revision.
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
    pub chart: HelmChart,
}

/// `chart` of [`HelmRelease`].
#[derive(Deserialize)]
pub(crate) struct HelmChart {
    pub metadata: HelmChartMetadata,
}

/// `chart.metadata` of [`HelmRelease`]: the chart's `Chart.yaml`.
#[derive(Deserialize)]
pub(crate) struct HelmChartMetadata {
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// `release` as the output files describe it: Helm's `release`, the configured driver and
/// `chart_repo` (the chart's repository, which Helm does not store).
pub(crate) fn release_ref(
    config: &HelmConfig,
    release: &HelmRelease,
    chart_repo: &str,
) -> ReleaseRef {
    ReleaseRef {
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        driver: config.driver.clone(),
        chart_name: release.chart.metadata.name.clone(),
        chart_version: release.chart.metadata.version.clone(),
        chart_repo: chart_repo.to_string(),
        values: None,
    }
}

/// Writes the release file (`RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`) for `release`, its value or,
/// with `use_helm_release_storage`, a reference for Capact's Helm release storage.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) naming the file and the variable.
pub(crate) fn write_release_file(
    config: &HelmConfig,
    release: &ReleaseRef,
    use_helm_release_storage: bool,
) -> Result<(), RunnerError> {
    crate::files::write_output(
        &config.release_output,
        "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
        &output::release_file(release, use_helm_release_storage),
    )
}

/// The release the release file (`RUNNER_HELM_RELEASE_PATH`) names, and its chart, for the
/// commands that act on an existing release without a chart (`uninstall`, `rollback`): the
/// manifest's `name` is not another way to name it; when given, it must be the release file's
/// (a guard against acting on the wrong release). The manifest's `timeout` is checked too.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) when the release file cannot be
/// read ([`input::read_release_file`]), `name` is another release's, or `timeout` is not a Go
/// duration ([`input::timeout`]).
pub(crate) fn named_release(
    config: &HelmConfig,
    name: &str,
    timeout: &str,
) -> Result<(Target, Chart), RunnerError> {
    let path = config.release_path.clone().unwrap_or_default();
    let release = input::read_release_file(&path)?;
    let name = name.trim();
    if !name.is_empty() && name != release.name {
        return Err(input::invalid(format!(
            "name {name:?} is not the release {:?} of the release file {} \
             (RUNNER_HELM_RELEASE_PATH), which names the release to {}: leave name out or make \
             them match",
            release.name,
            path.display(),
            config.command.action()
        )));
    }
    input::timeout(timeout)?;
    let target = Target {
        name: Some(release.name),
        namespace: release.namespace,
    };
    Ok((target, release.chart))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `argv` as strings, for comparisons.
    pub(crate) fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// A record of `revision` with `status`.
    pub(crate) fn rec(revision: u64, status: &str) -> Record {
        Record {
            revision,
            status: status.into(),
            ..Record::default()
        }
    }

    #[test]
    fn phases() {
        let names: Vec<[&str; 3]> = Command::ALL
            .iter()
            .map(|c| [Stage::Running, Stage::Done, Stage::Failed].map(|s| phase(*c, s)))
            .collect();
        assert_eq!(
            names,
            [
                ["Installing", "Installed", "InstallFailed"],
                ["Upgrading", "Upgraded", "UpgradeFailed"],
                ["Uninstalling", "Uninstalled", "UninstallFailed"],
                ["RollingBack", "RolledBack", "RollbackFailed"],
            ]
        );
    }

    #[test]
    fn the_release_file_names_the_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.yaml");
        std::fs::write(
            &path,
            "value: {name: shop, namespace: apps, chart: {name: webapp}}\n",
        )
        .unwrap();
        let config = HelmConfig {
            command: Command::Rollback,
            release_path: Some(path.clone()),
            driver: "secrets".into(),
            repository_cache: "/tmp/helm".into(),
            release_output: "/tmp/r.yaml".into(),
            additional_output: "/tmp/a.yaml".into(),
            helm_binary: "/bin/sh".into(),
            kubeconfig: None,
        };
        for name in ["", "shop", " shop "] {
            let (target, chart) = named_release(&config, name, "").unwrap();
            assert_eq!((target.name(), chart.name.as_str()), ("shop", "webapp"));
        }
        let e = named_release(&config, "shop", "5").unwrap_err().to_string();
        assert!(e.contains("timeout \"5\""), "{e}");
        let e = named_release(&config, "other", "").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "input manifest: name \"other\" is not the release \"shop\" of the release file \
                 {} (RUNNER_HELM_RELEASE_PATH), which names the release to roll back: leave name \
                 out or make them match",
                path.display()
            )
        );
    }
}
