//! Which action made a release, and what a retried attempt of the same action does with it.
//!
//! A Job retries its pod (a pod deleted, evicted or failed with a retryable exit code), and the
//! retried pod runs the same action again. To stay safe, the runner labels every release
//! revision it makes (Helm's release labels, `--labels`, stored on Helm's record of the
//! revision since Helm 3.13; Helm 4 the same) with the action's identity: the uid of the runner's
//! owner (`RUNNER_CONTEXT_PLATFORM_OWNER_UID`, the Job, the same for each of its pods) and the
//! action's name (`RUNNER_CONTEXT_NAME`). Before helm runs, [`decide`] reads the release's
//! history and says what this attempt does:
//!
//! | history of the release | install | upgrade |
//! |---|---|---|
//! | none | run helm | run helm (helm says the release is missing) |
//! | a revision of this action `deployed` or `superseded` | adopt it: no new revision | adopt it |
//! | the latest revision this action's and `pending-*` | mark it `failed`, then install with `--replace` | mark it `failed`, then upgrade |
//! | the latest revision this action's and `failed` or `uninstalled` | install with `--replace` | upgrade |
//! | revisions, none of this action | exit 2 (unless `replace` and the latest `failed`/`uninstalled`) | run helm |
//!
//! A `pending-*` revision of this action is one whose attempt is gone: the Job starts a pod
//! only once its predecessor has terminated (`podReplacementPolicy: Failed`, as the Jobs in
//! `deploy/` set), so no helm of this action still runs. Marking it `failed` is how Helm records
//! an interrupted operation and what Flux's helm-controller does with a release left pending.

use std::collections::BTreeMap;

use action_runner::ExecutionContext;

use crate::config::Command;
use crate::storage::Record;

/// Release label holding the uid of the runner's owner (the Job), or `none` without one.
pub const OWNER_UID_LABEL: &str = "kube-action-runners.io/owner-uid";
/// Release label holding the action's name (`RUNNER_CONTEXT_NAME`).
pub const ACTION_LABEL: &str = "kube-action-runners.io/action";

/// Longest label value Kubernetes accepts (apimachinery `validation.IsValidLabelValue`).
const MAX_LABEL_VALUE: usize = 63;

/// The identity of an action, as the labels of the release revisions it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionId {
    /// `RUNNER_CONTEXT_PLATFORM_OWNER_UID`, or `none`.
    pub owner_uid: String,
    /// `RUNNER_CONTEXT_NAME`.
    pub action: String,
}

impl ActionId {
    /// The identity of the action `ctx` runs, or `None` when it cannot be a label: without an
    /// owner, the action's name is the identity, and a name longer than 63 characters is not a
    /// label value (then the run is not retry-safe, which the runner logs).
    pub fn of(ctx: &ExecutionContext) -> Option<ActionId> {
        let owner_uid = ctx
            .platform
            .owner_reference
            .as_ref()
            .map(|o| o.uid.clone())
            .filter(|u| !u.is_empty() && u.len() <= MAX_LABEL_VALUE);
        if ctx.name.len() <= MAX_LABEL_VALUE {
            Some(ActionId {
                owner_uid: owner_uid.unwrap_or_else(|| "none".into()),
                action: ctx.name.clone(),
            })
        } else {
            // A DNS subdomain longer than a label value: the owner alone names the action.
            owner_uid.map(|owner_uid| ActionId {
                owner_uid,
                action: String::new(),
            })
        }
    }

    /// The value of helm's `--labels`: `kube-action-runners.io/owner-uid=<uid>,
    /// kube-action-runners.io/action=<name>` (the action label left out when empty).
    pub fn labels_arg(&self) -> String {
        let mut arg = format!("{OWNER_UID_LABEL}={}", self.owner_uid);
        if !self.action.is_empty() {
            arg.push_str(&format!(",{ACTION_LABEL}={}", self.action));
        }
        arg
    }

    /// A label selector for Helm's records of this action's releases in a namespace (to find
    /// a release whose name Helm generated): `owner=helm,<labels>`.
    pub fn selector(&self) -> String {
        format!("owner=helm,{}", self.labels_arg())
    }

    /// Whether a record with `labels` is a revision this action made.
    pub fn made(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        label(OWNER_UID_LABEL) == self.owner_uid
            && (self.action.is_empty() || label(ACTION_LABEL) == self.action)
    }
}

/// What this attempt does with the release, from its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run helm as the input says.
    Run,
    /// An earlier attempt of this action made this revision and finished: report it, make
    /// no new revision.
    Adopt(Record),
    /// An earlier attempt of this action left this revision (the latest) `pending-*`: mark it
    /// `failed`, then run helm (an install with `--replace`).
    Recover(Record),
    /// The latest revision is this action's and `failed` or `uninstalled`: run helm (an install
    /// with `--replace`).
    Replace(Record),
    /// Install only: the release exists and no revision is this action's.
    NotOurs(Record),
}

/// Helm's statuses of an operation under way (`release.Status.IsPending`, `pkg/release` of
/// Helm 3, `pkg/release/common` of Helm 4).
fn pending(status: &str) -> bool {
    matches!(
        status,
        "pending-install" | "pending-upgrade" | "pending-rollback"
    )
}

/// What an attempt of action `id` running `command` does, given the release's `history`
/// (oldest revision first, as [`crate::storage::records`] returns it) and the input's
/// `replace`. A pure function of its arguments; see the module's table.
pub fn decide(command: Command, id: &ActionId, history: &[Record], replace: bool) -> Decision {
    let Some(latest) = history.last() else {
        return Decision::Run;
    };
    if let Some(done) = history
        .iter()
        .rev()
        .find(|r| id.made(&r.labels) && matches!(r.status.as_str(), "deployed" | "superseded"))
    {
        // Superseded by a later revision of this action? Then that one is the latest of ours.
        return Decision::Adopt(done.clone());
    }
    let ours = id.made(&latest.labels);
    if ours && pending(&latest.status) {
        return Decision::Recover(latest.clone());
    }
    if ours && matches!(latest.status.as_str(), "failed" | "uninstalled") {
        return Decision::Replace(latest.clone());
    }
    match command {
        Command::Install
            if !(replace && matches!(latest.status.as_str(), "failed" | "uninstalled")) =>
        {
            Decision::NotOurs(latest.clone())
        }
        _ => Decision::Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ActionId {
        ActionId {
            owner_uid: "u-1".into(),
            action: "shop".into(),
        }
    }

    fn rec(revision: u64, status: &str, owner: Option<&str>) -> Record {
        let mut labels: BTreeMap<String, String> = [
            ("owner".to_string(), "helm".to_string()),
            ("version".to_string(), revision.to_string()),
            ("status".to_string(), status.to_string()),
        ]
        .into();
        if let Some(o) = owner {
            labels.insert(OWNER_UID_LABEL.into(), o.into());
            labels.insert(ACTION_LABEL.into(), "shop".into());
        }
        Record {
            object: format!("sh.helm.release.v1.shop.v{revision}"),
            revision,
            status: status.into(),
            labels,
            ..Record::default()
        }
    }

    #[test]
    fn the_table() {
        use Command::{Install, Upgrade};
        let d = |c, h: &[Record], replace| decide(c, &id(), h, replace);
        assert_eq!(d(Install, &[], false), Decision::Run);
        let ours = rec(1, "deployed", Some("u-1"));
        assert_eq!(
            d(Install, std::slice::from_ref(&ours), false),
            Decision::Adopt(ours)
        );
        let pending = rec(1, "pending-install", Some("u-1"));
        assert_eq!(
            d(Install, std::slice::from_ref(&pending), false),
            Decision::Recover(pending)
        );
        let failed = rec(1, "failed", Some("u-1"));
        assert_eq!(
            d(Install, std::slice::from_ref(&failed), false),
            Decision::Replace(failed)
        );
        let theirs = rec(1, "deployed", Some("u-2"));
        assert_eq!(
            d(Install, std::slice::from_ref(&theirs), true),
            Decision::NotOurs(theirs.clone())
        );
        let unlabelled = rec(1, "failed", None);
        assert_eq!(
            d(Install, std::slice::from_ref(&unlabelled), false),
            Decision::NotOurs(unlabelled.clone())
        );
        assert_eq!(d(Install, &[unlabelled], true), Decision::Run);

        // Upgrade: someone's release, then ours on top.
        assert_eq!(
            d(Upgrade, std::slice::from_ref(&theirs), false),
            Decision::Run
        );
        let ours2 = rec(2, "deployed", Some("u-1"));
        let history = [rec(1, "superseded", Some("u-2")), ours2.clone()];
        assert_eq!(d(Upgrade, &history, false), Decision::Adopt(ours2));
        // Ours finished, and another action upgraded since: still no new revision.
        let ours2 = rec(2, "superseded", Some("u-1"));
        let history = [ours2.clone(), rec(3, "deployed", Some("u-3"))];
        assert_eq!(d(Upgrade, &history, false), Decision::Adopt(ours2));
        let pending = rec(2, "pending-upgrade", Some("u-1"));
        let history = [theirs.clone(), pending.clone()];
        assert_eq!(d(Upgrade, &history, false), Decision::Recover(pending));
        // Someone else's operation under way: helm says so.
        let history = [theirs, rec(2, "pending-upgrade", Some("u-3"))];
        assert_eq!(d(Upgrade, &history, false), Decision::Run);
    }

    #[test]
    fn labels_and_selector() {
        assert_eq!(
            id().labels_arg(),
            "kube-action-runners.io/owner-uid=u-1,kube-action-runners.io/action=shop"
        );
        assert_eq!(
            id().selector(),
            "owner=helm,kube-action-runners.io/owner-uid=u-1,kube-action-runners.io/action=shop"
        );
        let mut labels = rec(1, "deployed", Some("u-1")).labels;
        assert!(id().made(&labels));
        labels.insert(ACTION_LABEL.into(), "other".into());
        assert!(!id().made(&labels));
    }
}
