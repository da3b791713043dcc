//! `RUNNER_COMMAND=uninstall`: `helm uninstall` of the release the release file names
//! (`RUNNER_HELM_RELEASE_PATH`), without a chart; no output files.
//!
//! What the runner decides from the release's history before helm runs (Helm's own rule in
//! `pkg/action/uninstall.go`, the same in Helm 3 and 4):
//!
//! | history | uninstall |
//! |---|---|
//! | no records | already gone: success, helm not run (a retried attempt) |
//! | latest `uninstalled`, `keepHistory: true` | already gone: success, helm not run (Helm would fail: "already deleted") |
//! | latest `uninstalled`, `keepHistory: false` | helm runs (it purges the kept history) |
//! | otherwise | helm runs |
//!
//! Statuses: `Uninstalling` → `Uninstalled` (`alreadyUninstalled` says whether helm ran) or
//! `UninstallFailed`.

use std::ffi::OsString;

use action_runner::{RunnerError, WaitForCompletionOutput};
use serde::Deserialize;
use serde_json::json;

use super::{
    Outcome, Plan, PrepareCx, Stage, StartCx, Target, Verb, WaitCx, hooks_and_wait, named_release,
    phase,
};
use crate::config::Command;
use crate::input;
use crate::storage::{self, Record};
use crate::version::HelmVersion;

/// The input manifest of `uninstall`. Any other field is an input error naming the commands it
/// applies to ([`crate::manifest`]).
///
/// ```yaml
/// name: shop          # optional: a guard, it must be the release file's name
/// keepHistory: false  # --keep-history
/// noHooks: false      # --no-hooks
/// wait: true          # --wait: until the release's objects are gone
/// timeout: 5m         # --timeout
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UninstallInput {
    /// When given, the release file's release name: a guard against uninstalling another
    /// release than the one meant.
    #[serde(default)]
    pub name: String,
    /// `--keep-history`: keep the release's records (marked `uninstalled`), so that it can be
    /// rolled back or its name installed again with `replace`.
    #[serde(default)]
    pub keep_history: bool,
    /// `--no-hooks`: skip the chart's pre- and post-delete hooks.
    #[serde(default)]
    pub no_hooks: bool,
    /// `--wait`: wait until the release's objects are deleted. Default `true`.
    #[serde(default = "input::default_true")]
    pub wait: bool,
    /// `--timeout`: how long helm waits for the hooks and for the objects to be gone, a Go
    /// duration ([`input::timeout`]); empty: `RUNNER_TIMEOUT`, else Helm's 5m.
    #[serde(default)]
    pub timeout: String,
}

/// An uninstall, from `prepare` to its outcome.
#[derive(Debug)]
pub(crate) struct Uninstall {
    input: UninstallInput,
    /// Set by `plan` when there is nothing to uninstall: why, after "release ... ".
    gone: Option<String>,
}

impl Verb for Uninstall {
    type Input = UninstallInput;

    fn prepare(cx: PrepareCx<'_>, input: &UninstallInput) -> Result<(Self, Target), RunnerError> {
        let (target, _chart) = named_release(cx.config, &input.name, &input.timeout)?;
        let input = input.clone();
        Ok((Uninstall { input, gone: None }, target))
    }

    async fn plan(&mut self, _: StartCx<'_>, history: Vec<Record>) -> Result<Plan, RunnerError> {
        self.gone = gone(&history, self.input.keep_history);
        Ok(match self.gone {
            Some(_) => Plan::Skip,
            None => Plan::Run,
        })
    }

    fn args(&self, target: &Target, version: &HelmVersion, dry_run: bool) -> Vec<OsString> {
        uninstall_args(version, target.name(), &self.input, dry_run)
    }

    fn waits(&self, _dry_run: bool) -> bool {
        false
    }

    async fn outcome(&mut self, cx: WaitCx<'_>, _stdout: Option<Vec<u8>>) -> Outcome {
        let name = cx.target.name();
        let ns = &cx.target.namespace;
        let version = &cx.version.text;
        if let Some(why) = &self.gone {
            let message = format!(
                "release {name:?} in namespace {ns:?} {why}: nothing to uninstall (an earlier \
                 attempt, or someone else, uninstalled it)"
            );
            tracing::info!(release = %name, namespace = %ns, "{message}");
            let release = json!({"name": name, "namespace": ns});
            return Ok(done(message, release, version, true));
        }
        if cx.input.ctx.dry_run {
            let message = format!(
                "dry run: release {name:?} would be uninstalled from namespace {ns:?}; Helm \
                 simulated it and changed nothing"
            );
            let release = json!({"name": name, "namespace": ns});
            return Ok(done(message, release, version, false));
        }
        // What Helm's storage holds now: with keepHistory, the latest revision `uninstalled`;
        // else nothing.
        let latest = storage::records(&cx.input.client, ns, &cx.config.driver, name)
            .await?
            .pop();
        let (message, release) = match &latest {
            Some(r) => (
                format!(
                    "release {name:?} uninstalled successfully from namespace {ns:?} (history \
                     kept: revision {} recorded as {:?})",
                    r.revision, r.status
                ),
                json!({"name": name, "namespace": ns, "revision": r.revision, "status": r.status}),
            ),
            None => (
                format!("release {name:?} uninstalled successfully from namespace {ns:?}"),
                json!({"name": name, "namespace": ns}),
            ),
        };
        tracing::info!(release = %name, namespace = %ns, "helm uninstall done");
        Ok(done(message, release, version, false))
    }
}

/// Why there is nothing to uninstall, from the release's `history` (oldest first) and
/// `keepHistory` (see the module's table): `None` when helm is to run.
pub fn gone(history: &[Record], keep_history: bool) -> Option<String> {
    match history.last() {
        None => Some("is not installed (no records in Helm's storage)".into()),
        Some(r) if r.status == "uninstalled" && keep_history => Some(format!(
            "is already uninstalled (revision {} recorded as \"uninstalled\", history kept)",
            r.revision
        )),
        Some(_) => None,
    }
}

/// The successful end: `message`, and the status with `release` as Helm stores it now and
/// whether it was `already` gone.
fn done(
    message: String,
    release: serde_json::Value,
    helm_version: &str,
    already: bool,
) -> WaitForCompletionOutput {
    WaitForCompletionOutput {
        succeeded: true,
        message,
        status: json!({
            "phase": phase(Command::Uninstall, Stage::Done),
            "release": release,
            "helmVersion": helm_version,
            "alreadyUninstalled": already,
        }),
    }
}

/// `helm uninstall <name>`, without the cluster flags: then `--keep-history`, `--no-hooks`, the
/// wait flags of the major ([`HelmVersion::wait_args`]), `--dry-run`, and always
/// `--ignore-not-found` (a release deleted between the runner's read and helm's is gone, which
/// is what was asked).
pub fn uninstall_args(
    version: &HelmVersion,
    name: &str,
    input: &UninstallInput,
    dry_run: bool,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["uninstall".into(), name.into()];
    if input.keep_history {
        argv.push("--keep-history".into());
    }
    hooks_and_wait(&mut argv, version, input.no_hooks, input.wait);
    if dry_run {
        argv.push("--dry-run".into());
    }
    argv.push("--ignore-not-found".into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verbs::tests::{rec, strings};

    /// Nothing to uninstall: no records, or the latest `uninstalled` with the history kept.
    #[test]
    fn gone_or_not() {
        assert!(gone(&[], false).is_some());
        let kept = [rec(1, "superseded"), rec(2, "uninstalled")];
        assert!(gone(&kept, true).is_some_and(|m| m.contains("revision 2")));
        assert_eq!(gone(&kept, false), None);
        assert_eq!(gone(&[rec(1, "deployed")], true), None);
        assert_eq!(gone(&[rec(1, "uninstalling")], false), None);
    }

    #[test]
    fn args_per_helm_version() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        let input = |v| serde_json::from_value::<UninstallInput>(v).unwrap();
        let i = input(json!({"keepHistory": true, "noHooks": true}));
        assert_eq!(
            strings(&uninstall_args(&v4, "shop", &i, false)),
            [
                "uninstall",
                "shop",
                "--keep-history",
                "--no-hooks",
                "--wait=watcher",
                "--ignore-not-found"
            ]
        );
        assert_eq!(
            strings(&uninstall_args(
                &v3,
                "shop",
                &input(json!({"wait": false})),
                true
            )),
            ["uninstall", "shop", "--dry-run", "--ignore-not-found"]
        );
    }
}
