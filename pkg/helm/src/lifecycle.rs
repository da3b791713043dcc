//! `uninstall` and `rollback`: the commands that act on an existing release without a chart,
//! and the manifest checks every command shares (which fields apply, `timeout`).
//!
//! Both name the release by the release file (`RUNNER_HELM_RELEASE_PATH`), as `upgrade` does:
//! its `value.name` in its `value.namespace`. The manifest's `name` is not another way to name
//! it; when given, it must be the release file's name (a guard against acting on the wrong
//! release), else the input is refused.
//!
//! What the runner decides from the release's history (Helm's records, read before helm runs;
//! Helm's own rules in `pkg/action/uninstall.go` and `rollback.go`, the same in Helm 3 and 4):
//!
//! | history | uninstall | rollback |
//! |---|---|---|
//! | no records | already gone: success, helm not run (a retried attempt) | exit 2: no such release |
//! | latest `uninstalled`, `keepHistory: true` | already gone: success, helm not run (Helm would fail: "already deleted") | helm runs |
//! | latest `uninstalled`, `keepHistory: false` | helm runs (it purges the kept history) | helm runs |
//! | otherwise | helm runs | the target (`revision`, else latest − 1) must be a record: else exit 2 naming `revision` |

use std::ffi::OsString;
use std::time::Duration;

use action_runner::RunnerError;

use crate::config::Command;
use crate::input::HelmInput;
use crate::storage::Record;
use crate::version::HelmVersion;

/// The first field of `args` that is set but does not apply to `command`, with the commands it
/// applies to: `Some(("keepHistory", "uninstall"))`. `install` and `upgrade` keep accepting the
/// fields of each other (the upgrade ignores `name`, `generateName` and `replace`, as it always
/// has); `uninstall` and `rollback` take only `name` (a guard), `noHooks`, `wait`, `timeout`,
/// `maxHistory` (rollback) and `output.helmRelease` (rollback), and their own field.
pub fn misplaced_field(command: Command, args: &HelmInput) -> Option<(&'static str, &'static str)> {
    use Command::{Install, Rollback, Uninstall, Upgrade};
    let chart = &args.chart;
    let values = args.values.as_ref().is_some_and(|v| !v.0.is_empty());
    let output = &args.output;
    let fields: [(&str, bool, &[Command], &str); 15] = [
        (
            "generateName",
            args.generate_name,
            &[Install, Upgrade],
            "install",
        ),
        ("replace", args.replace, &[Install, Upgrade], "install"),
        (
            "chart",
            !(chart.name.is_empty()
                && chart.repo.is_empty()
                && chart.version.is_empty()
                && chart.auth.is_none()
                && chart.ca_file.is_empty()
                && !chart.pass_credentials
                && !chart.plain_http),
            &[Install, Upgrade],
            "install and upgrade",
        ),
        ("values", values, &[Install, Upgrade], "install and upgrade"),
        (
            "valuesFromFile",
            !args.values_from_file.is_empty(),
            &[Install, Upgrade],
            "install and upgrade",
        ),
        (
            "valuesFrom",
            !args.values_from.is_empty(),
            &[Install, Upgrade],
            "install and upgrade",
        ),
        (
            "reuseValues",
            args.reuse_values,
            &[Install, Upgrade],
            "upgrade",
        ),
        (
            "resetValues",
            args.reset_values,
            &[Install, Upgrade],
            "upgrade",
        ),
        (
            "output.additional",
            output.go_template().is_some() || output.additional.use_helm_template_storage,
            &[Install, Upgrade],
            "install and upgrade",
        ),
        (
            "output.helmRelease",
            output.helm_release.use_helm_release_storage,
            &[Install, Upgrade, Rollback],
            "install, upgrade and rollback",
        ),
        (
            "rollbackOnFailure",
            args.rollback_on_failure,
            &[Install, Upgrade],
            "install and upgrade",
        ),
        (
            "createNamespace",
            args.create_namespace,
            &[Install],
            "install",
        ),
        ("keepHistory", args.keep_history, &[Uninstall], "uninstall"),
        ("revision", args.revision.is_some(), &[Rollback], "rollback"),
        (
            "maxHistory",
            args.max_history != crate::input::DEFAULT_MAX_HISTORY,
            &[Install, Upgrade, Rollback],
            "upgrade and rollback",
        ),
    ];
    fields
        .into_iter()
        .find(|(_, set, allowed, _)| *set && !allowed.contains(&command))
        .map(|(field, _, _, applies)| (field, applies))
}

/// The manifest's `timeout`, parsed as a Go duration (`None` when empty).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming `timeout` and its text
/// when it is not a positive Go duration.
pub fn timeout(args: &HelmInput) -> Result<Option<Duration>, RunnerError> {
    let text = args.timeout.trim();
    if text.is_empty() {
        return Ok(None);
    }
    action_runner::config::parse_go_duration(text)
        .map(Some)
        .map_err(|e| RunnerError::invalid_input(format!("input manifest: timeout {text:?} {e}")))
}

/// What an uninstall does, from the release's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallPlan {
    /// Run `helm uninstall`.
    Run,
    /// Nothing to uninstall (no records, or the latest `uninstalled` and the history to be
    /// kept): success without running helm; the text says why, after "release ... ".
    Gone(String),
}

/// What `helm uninstall` with `keep_history` does to a release with `history` (oldest first).
pub fn uninstall_plan(history: &[Record], keep_history: bool) -> UninstallPlan {
    match history.last() {
        None => UninstallPlan::Gone("is not installed (no records in Helm's storage)".into()),
        Some(r) if r.status == "uninstalled" && keep_history => UninstallPlan::Gone(format!(
            "is already uninstalled (revision {} recorded as \"uninstalled\", history kept)",
            r.revision
        )),
        Some(_) => UninstallPlan::Run,
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
/// revision − 1; it must be one of the release's records.
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

/// `helm uninstall <name>`, without the cluster flags: then `--keep-history`, `--no-hooks`, the
/// wait flags of the major ([`HelmVersion::wait_args`]), `--dry-run`, and always
/// `--ignore-not-found` (a release deleted between the runner's read and helm's is gone, which
/// is what was asked).
pub fn uninstall_args(
    version: &HelmVersion,
    name: &str,
    args: &HelmInput,
    dry_run: bool,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["uninstall".into(), name.into()];
    if args.keep_history {
        argv.push("--keep-history".into());
    }
    if args.no_hooks {
        argv.push("--no-hooks".into());
    }
    argv.extend(version.wait_args(args.wait).into_iter().map(OsString::from));
    if dry_run {
        argv.push("--dry-run".into());
    }
    argv.push("--ignore-not-found".into());
    argv
}

/// `helm rollback <name> <revision>`, without the cluster flags: then `--history-max`,
/// `--no-hooks`, the wait flags of the major and its dry-run flag
/// ([`HelmVersion::rollback_dry_run_arg`]).
pub fn rollback_args(
    version: &HelmVersion,
    name: &str,
    revision: u64,
    args: &HelmInput,
    dry_run: bool,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "rollback".into(),
        name.into(),
        revision.to_string().into(),
        "--history-max".into(),
        args.max_history.to_string().into(),
    ];
    if args.no_hooks {
        argv.push("--no-hooks".into());
    }
    argv.extend(version.wait_args(args.wait).into_iter().map(OsString::from));
    if dry_run {
        argv.push(version.rollback_dry_run_arg().into());
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: serde_json::Value) -> HelmInput {
        serde_json::from_value(v).unwrap()
    }

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn rec(revision: u64, status: &str) -> Record {
        Record {
            revision,
            status: status.into(),
            ..Record::default()
        }
    }

    #[test]
    fn fields_apply_to_their_commands() {
        use Command::{Install, Rollback, Uninstall, Upgrade};
        let i = input(json!({"keepHistory": true}));
        assert_eq!(misplaced_field(Uninstall, &i), None);
        assert_eq!(
            misplaced_field(Install, &i),
            Some(("keepHistory", "uninstall"))
        );
        let i = input(
            json!({"revision": 2, "maxHistory": 3, "name": "shop", "wait": false,
            "timeout": "1m", "noHooks": true, "output": {"helmRelease": {"useHelmReleaseStorage": true}}}),
        );
        assert_eq!(misplaced_field(Rollback, &i), None);
        assert_eq!(misplaced_field(Upgrade, &i), Some(("revision", "rollback")));
        let i = input(json!({"chart": {"name": "webapp"}}));
        assert_eq!(
            misplaced_field(Uninstall, &i),
            Some(("chart", "install and upgrade"))
        );
        let i = input(json!({"values": {"a": 1}}));
        assert_eq!(
            misplaced_field(Rollback, &i),
            Some(("values", "install and upgrade"))
        );
        let i = input(json!({"createNamespace": true, "rollbackOnFailure": true}));
        assert_eq!(misplaced_field(Install, &i), None);
        assert_eq!(
            misplaced_field(Upgrade, &i),
            Some(("createNamespace", "install"))
        );
        let i = input(json!({"rollbackOnFailure": true}));
        assert_eq!(
            misplaced_field(Uninstall, &i),
            Some(("rollbackOnFailure", "install and upgrade"))
        );
        let i = input(json!({"valuesFrom": [{"kind": "Secret", "name": "s"}]}));
        assert_eq!(misplaced_field(Upgrade, &i), None);
        assert_eq!(
            misplaced_field(Rollback, &i),
            Some(("valuesFrom", "install and upgrade"))
        );
        let i = input(json!({"valuesFromFile": ["a.yaml"]}));
        assert_eq!(
            misplaced_field(Uninstall, &i),
            Some(("valuesFromFile", "install and upgrade"))
        );
        let i = input(json!({"chart": {"plainHttp": true}}));
        assert_eq!(
            misplaced_field(Uninstall, &i),
            Some(("chart", "install and upgrade"))
        );
        // As before: an upgrade ignores the install's fields.
        let i = input(json!({"name": "x", "generateName": true, "replace": true}));
        assert_eq!(misplaced_field(Upgrade, &i), None);
        assert_eq!(
            misplaced_field(Rollback, &i),
            Some(("generateName", "install"))
        );
    }

    #[test]
    fn timeout_is_a_positive_go_duration() {
        assert_eq!(timeout(&input(json!({}))).unwrap(), None);
        assert_eq!(
            timeout(&input(json!({"timeout": "1m30s"}))).unwrap(),
            Some(Duration::from_secs(90))
        );
        for bad in ["5", "5 minutes", "-1s", "0"] {
            let e = timeout(&input(json!({"timeout": bad})))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("timeout {bad:?}")), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn uninstall_plans() {
        assert!(matches!(uninstall_plan(&[], false), UninstallPlan::Gone(_)));
        let kept = [rec(1, "superseded"), rec(2, "uninstalled")];
        assert!(
            matches!(uninstall_plan(&kept, true), UninstallPlan::Gone(m) if m.contains("revision 2"))
        );
        assert_eq!(uninstall_plan(&kept, false), UninstallPlan::Run);
        assert_eq!(
            uninstall_plan(&[rec(1, "deployed")], true),
            UninstallPlan::Run
        );
        assert_eq!(
            uninstall_plan(&[rec(1, "uninstalling")], false),
            UninstallPlan::Run
        );
    }

    #[test]
    fn rollback_targets() {
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
    fn uninstall_and_rollback_args_per_helm_version() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
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
        let i = input(json!({"revision": 2, "maxHistory": 0}));
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
                &input(json!({"wait": false})),
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
