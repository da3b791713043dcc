//! `RUNNER_COMMAND=rollback`: `helm rollback` of the release the release file names
//! (`RUNNER_HELM_RELEASE_PATH`) to a revision of its history, without a chart; writes the release
//! file for the new revision.
//!
//! The revision is the manifest's `revision`, else the one before the latest (Helm's rule,
//! `pkg/action/rollback.go`, `prepareRollback`, the same in Helm 3 and 4); the runner reads the
//! history before helm runs and refuses, with exit 2 and nothing written, a release without
//! records or a revision not in its history. A rollback makes a new revision (Helm copies the
//! target's chart, values and manifest): the runner checks it is stored `deployed`.
//!
//! Statuses: `RollingBack` (with `targetRevision`) → `RolledBack` or `RollbackFailed`.

use std::ffi::OsString;

use action_runner::{RunnerError, WaitForCompletionOutput};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::{
    HelmRelease, Outcome, Plan, PrepareCx, Stage, StartCx, Target, Verb, WaitCx, hooks_and_wait,
    named_release, phase,
};
use crate::config::Command;
use crate::input::{self, ReleaseOutputArgs};
use crate::manifest;
use crate::storage::{self, Record};
use crate::version::HelmVersion;

/// The input manifest of `rollback`. Any other field is an input error naming the commands it
/// applies to ([`crate::manifest`]).
///
/// ```yaml
/// name: shop        # optional: a guard, it must be the release file's name
/// revision: 1       # the revision to go back to; absent or 0: the one before the latest
/// maxHistory: 10    # --history-max (0: keep all)
/// noHooks: false    # --no-hooks
/// wait: true        # --wait: until the release's workloads are ready
/// timeout: 5m       # --timeout
/// output:
///   helmRelease: {useHelmReleaseStorage: false}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollbackInput {
    /// When given, the release file's release name: a guard against rolling back another
    /// release than the one meant.
    #[serde(default)]
    pub name: String,
    /// The revision to roll back to; absent or 0: the one before the latest (Helm's rule). It
    /// must be in the release's history.
    #[serde(default)]
    pub revision: Option<u64>,
    /// `--timeout` of each wait (hooks, `--wait`), a Go duration ([`input::timeout`]); empty:
    /// `RUNNER_TIMEOUT`, else Helm's 5m.
    #[serde(default)]
    pub timeout: String,
    /// `--history-max`: revisions kept per release, the new one included; 0 keeps all.
    /// Default 10, Helm's.
    #[serde(default = "input::default_max_history")]
    pub max_history: u32,
    /// `--no-hooks`: skip the chart's pre- and post-rollback hooks.
    #[serde(default)]
    pub no_hooks: bool,
    /// `--wait`: wait until the workloads of the revision rolled back to are ready. Default
    /// `true`.
    #[serde(default = "input::default_true")]
    pub wait: bool,
    /// What the release file holds. Only `helmRelease`: a rollback writes no additional file.
    #[serde(default, deserialize_with = "output")]
    pub output: RollbackOutput,
}

/// `output` of a rollback: the release file only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RollbackOutput {
    /// The release file.
    #[serde(default)]
    pub helm_release: ReleaseOutputArgs,
}

/// `output`, where `additional` and `goTemplate` are install's and upgrade's.
fn output<'de, D: Deserializer<'de>>(d: D) -> Result<RollbackOutput, D::Error> {
    manifest::checked(d, Command::Rollback, &manifest::OUTPUT)
}

/// A rollback, from `prepare` to its outcome.
#[derive(Debug)]
pub(crate) struct Rollback {
    input: RollbackInput,
    /// The release file's `chart.repo`, for the release file written.
    chart_repo: String,
    /// Set by `plan`: the revision to roll back to.
    revision: u64,
}

impl Verb for Rollback {
    type Input = RollbackInput;

    fn prepare(cx: PrepareCx<'_>, input: &RollbackInput) -> Result<(Self, Target), RunnerError> {
        let (target, chart) = named_release(cx.config, &input.name, &input.timeout)?;
        let verb = Rollback {
            input: input.clone(),
            chart_repo: chart.repo,
            revision: 0,
        };
        Ok((verb, target))
    }

    async fn plan(&mut self, cx: StartCx<'_>, history: Vec<Record>) -> Result<Plan, RunnerError> {
        let (name, ns) = (cx.target.name(), &cx.target.namespace);
        self.revision = rollback_target(&history, self.input.revision).map_err(|e| match e {
            TargetError::NoRelease => RunnerError::invalid_input(format!(
                "release {name:?} in namespace {ns:?} (RUNNER_HELM_RELEASE_PATH): {e}"
            )),
            _ => input::invalid(format!("{e}: release {name:?} in namespace {ns:?}")),
        })?;
        Ok(Plan::Run)
    }

    fn args(&self, target: &Target, version: &HelmVersion, dry_run: bool) -> Vec<OsString> {
        rollback_args(version, target.name(), self.revision, &self.input, dry_run)
    }

    fn waits(&self, dry_run: bool) -> bool {
        self.input.wait && !dry_run
    }

    fn status(&self) -> Map<String, Value> {
        Map::from_iter([("targetRevision".to_string(), self.revision.into())])
    }

    /// The new revision is read from Helm's storage and checked `deployed` (as an install's is),
    /// and the release file is rewritten for it (a dry run: for the target, Helm stored nothing).
    async fn outcome(&mut self, cx: WaitCx<'_>, _stdout: Option<Vec<u8>>) -> Outcome {
        let dry_run = cx.input.ctx.dry_run;
        let (name, ns) = (cx.target.name(), &cx.target.namespace);
        let target = self.revision;
        let release = self.stored(&cx).await?;
        let message = if dry_run {
            format!(
                "dry run: release {name:?} in namespace {ns:?} would be rolled back to revision \
                 {target}; Helm stored nothing"
            )
        } else {
            format!(
                "release {name:?} rolled back successfully to revision {target} in namespace \
                 {ns:?} (revision {})",
                release.version
            )
        };
        tracing::info!(release = %name, namespace = %ns, target, revision = release.version,
            dry_run, "helm rollback done");
        let reference = super::release_ref(cx.config, &release, &self.chart_repo);
        let storage = self.input.output.helm_release.use_helm_release_storage;
        super::write_release_file(cx.config, &reference, storage).map_err(|e| {
            RunnerError::failed(format!("{message}, but its outputs could not be produced"))
                .because(e)
        })?;
        Ok(WaitForCompletionOutput {
            succeeded: true,
            message,
            status: json!({
                "phase": phase(Command::Rollback, Stage::Done),
                "release": {"name": name, "namespace": ns, "revision": release.version,
                    "status": (!dry_run).then_some("deployed")},
                "targetRevision": target,
                "helmVersion": cx.version.text,
            }),
        })
    }
}

impl Rollback {
    /// The revision helm made, from Helm's storage (a dry run: the target, which helm only
    /// simulated going back to).
    ///
    /// # Errors
    /// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when the revision is missing, not
    /// `deployed`, or unreadable; the list of Helm's records as [`storage::records`].
    async fn stored(&self, cx: &WaitCx<'_>) -> Result<HelmRelease, RunnerError> {
        let dry_run = cx.input.ctx.dry_run;
        let (name, ns) = (cx.target.name(), &cx.target.namespace);
        let history = storage::records(&cx.input.client, ns, &cx.config.driver, name).await?;
        let record = if dry_run {
            history.iter().find(|r| r.revision == self.revision)
        } else {
            history.last()
        };
        let what = format!("release {name:?} in namespace {ns:?}");
        let Some(record) = record else {
            return Err(RunnerError::failed(format!(
                "{what}: helm rollback reported success, but Helm's storage holds no revision of it"
            )));
        };
        if !dry_run && record.status != "deployed" {
            return Err(RunnerError::failed(format!(
                "{what}: helm rollback reported success, but Helm's storage holds revision {} as \
                 {:?} (are the runner's rights on Helm's storage driver complete?)",
                record.revision, record.status
            )));
        }
        record
            .release_json()
            .map_err(|e| RunnerError::failed(e.to_string()))
            .and_then(|json| {
                serde_json::from_slice(&json).map_err(|e| {
                    RunnerError::failed("it is not Helm's release JSON".to_string()).because(e)
                })
            })
            .map_err(|e| {
                RunnerError::failed(format!(
                    "Helm's record {ns}/{} could not be read",
                    record.object
                ))
                .because(e)
            })
    }
}

/// Why a rollback cannot go ahead (exit 2: the input is at fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The release has no records.
    #[error("the release has no revisions in Helm's storage (is it installed?)")]
    NoRelease,
    /// `revision` (non-zero) is not in the history.
    #[error("revision {wanted} is not in the release's history (revisions {have})")]
    NotInHistory {
        /// The manifest's `revision`.
        wanted: u64,
        /// The revisions stored, as `1, 2, 3`.
        have: String,
    },
    /// No `revision` (or 0): the previous revision, latest − 1, is not in the history.
    #[error(
        "revision is not set and the release has no previous revision to roll back to (latest \
         {latest}; revisions {have}): set revision"
    )]
    NoPrevious {
        /// The latest revision.
        latest: u64,
        /// The revisions stored, as `1, 2, 3`.
        have: String,
    },
}

/// The revision a rollback goes back to, by Helm's rule (`pkg/action/rollback.go`,
/// `prepareRollback`, Helm 3 and 4): `revision` when given and not 0, else the latest
/// revision − 1; it must be one of the release's records (`history`, oldest first).
///
/// # Errors
/// [`TargetError`] when there is no such revision.
pub fn rollback_target(history: &[Record], revision: Option<u64>) -> Result<u64, TargetError> {
    let latest = history.last().ok_or(TargetError::NoRelease)?.revision;
    let have = history
        .iter()
        .map(|r| r.revision.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let exists = |n: u64| history.iter().any(|r| r.revision == n);
    match revision.filter(|r| *r != 0) {
        Some(wanted) if exists(wanted) => Ok(wanted),
        Some(wanted) => Err(TargetError::NotInHistory { wanted, have }),
        None if latest > 1 && exists(latest - 1) => Ok(latest - 1),
        None => Err(TargetError::NoPrevious { latest, have }),
    }
}

/// `helm rollback <name> <revision>`, without the cluster flags: then `--history-max`,
/// `--no-hooks`, the wait flags of the major ([`HelmVersion::wait_args`]) and its dry-run flag
/// ([`HelmVersion::rollback_dry_run_arg`]).
pub fn rollback_args(
    version: &HelmVersion,
    name: &str,
    revision: u64,
    input: &RollbackInput,
    dry_run: bool,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "rollback".into(),
        name.into(),
        revision.to_string().into(),
        "--history-max".into(),
        input.max_history.to_string().into(),
    ];
    hooks_and_wait(&mut argv, version, input.no_hooks, input.wait);
    if dry_run {
        argv.push(version.rollback_dry_run_arg().into());
    }
    argv
}

#[cfg(test)]
mod tests {
    use crate::verbs::tests::rec;

    /// Helm's rule: `revision`, else latest − 1, and it must be a record.
    #[test]
    fn rollback_targets() {
        use super::*;
        let h = [
            rec(2, "superseded"),
            rec(3, "superseded"),
            rec(4, "deployed"),
        ];
        assert_eq!(rollback_target(&h, None), Ok(3));
        assert_eq!(rollback_target(&h, Some(0)), Ok(3));
        assert_eq!(rollback_target(&h, Some(2)), Ok(2));
        assert_eq!(rollback_target(&h, Some(4)), Ok(4));
        let e = rollback_target(&h, Some(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "revision 1 is not in the release's history (revisions 2, 3, 4)"
        );
        let e = rollback_target(&[rec(1, "deployed")], None).unwrap_err();
        assert!(
            matches!(e, TargetError::NoPrevious { latest: 1, .. }),
            "{e}"
        );
        // Pruned by --history-max: the previous one is gone.
        assert!(rollback_target(&[rec(2, "superseded"), rec(4, "deployed")], None).is_err());
        assert_eq!(rollback_target(&[], Some(1)), Err(TargetError::NoRelease));
    }

    #[test]
    fn args_per_helm_version() {
        use super::*;
        use crate::verbs::tests::strings;
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        let input = |text| serde_saphyr::from_str::<RollbackInput>(text).unwrap();
        let i = input("revision: 2\nmaxHistory: 0\n");
        assert_eq!(
            strings(&rollback_args(&v3, "shop", 2, &i, true)),
            [
                "rollback",
                "shop",
                "2",
                "--history-max",
                "0",
                "--wait",
                "--dry-run"
            ]
        );
        assert_eq!(
            strings(&rollback_args(
                &v4,
                "shop",
                1,
                &input("wait: false\n"),
                true
            )),
            [
                "rollback",
                "shop",
                "1",
                "--history-max",
                "10",
                "--dry-run=server"
            ]
        );
    }
}
