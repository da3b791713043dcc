//! Which action made a release, and what a retried attempt of the same action does with it.
//!
//! A Job retries its pod (a pod deleted, evicted or failed with a retryable exit code), and the
//! retried pod runs the same action again. To stay safe, the runner labels every release
//! revision it makes (Helm's release labels, `--labels`, stored on Helm's record of the
//! revision since Helm 3.13; Helm 4 the same) with the action's identity
//! ([`action_runner::identity`]): the uid of the runner's owner
//! (`RUNNER_CONTEXT_PLATFORM_OWNER_UID`, the Job, the same for each of its pods, or `none`), the
//! action's name (`RUNNER_CONTEXT_NAME`) and the digest of its input ([`action_runner::identity`]: the
//! command, the manifest, the release file, each values layer as read and the chart's files).
//! Before helm runs, `Check::decide` reads the release's history and [`decide`] says what this
//! attempt does; `Check::settle` carries it out:
//!
//! | history of the release | install | upgrade |
//! |---|---|---|
//! | none | run helm | run helm (helm says the release is missing) |
//! | a revision of this action `deployed` or `superseded` | adopt it: no new revision | adopt it |
//! | the latest revision this action's and `pending-*` | mark it `failed`, then install with `--replace` | mark it `failed`, then upgrade |
//! | the latest revision this action's and `failed` or `uninstalled` | install with `--replace` | upgrade |
//! | the latest revision made under this action's name by another owner | exit 2 naming that owner | exit 2 naming that owner |
//! | revisions, none of this action | exit 2 (unless `replace` and the latest `failed`/`uninstalled`) | run helm: a new revision |
//!
//! "This action" is the same owner, name and input digest. The same name and owner with another
//! input (a by-hand re-run with new values, or an `upgrade` under the name its `install` used)
//! is a new action: an upgrade makes a new revision, it never adopts the earlier one. Another
//! Job under the same name is refused: two owners cannot be one action.
//!
//! A `pending-*` revision of this action is one whose attempt is gone: the Job starts a pod
//! only once its predecessor has terminated (`podReplacementPolicy: Failed`, as the Jobs in
//! `deploy/` set), so no helm of this action still runs. Marking it `failed` is how Helm records
//! an interrupted operation and what Flux's helm-controller does with a release left pending.
//! A `pending-*` revision of another input is someone else's operation: helm is run and says so.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use action_runner::identity::INPUT_DIGEST_LABEL;
use action_runner::{ExecutionContext, InputDigest, RunnerError};

use crate::config::Command;
use crate::storage::{self, Record};

/// Release label holding the uid of the runner's owner (the Job), or `none` without one.
pub const OWNER_UID_LABEL: &str = "kube-action-runners.io/owner-uid";
/// Release label holding the action's name (`RUNNER_CONTEXT_NAME`).
pub const ACTION_LABEL: &str = "kube-action-runners.io/action";

/// Longest label value Kubernetes accepts (apimachinery `validation.IsValidLabelValue`).
const MAX_LABEL_VALUE: usize = 63;

/// What an owner-uid label holds when the action has no owner.
pub const NO_OWNER: &str = "none";

/// The identity of an action, as the labels of the release revisions it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionId {
    /// `RUNNER_CONTEXT_PLATFORM_OWNER_UID`, or [`NO_OWNER`].
    pub owner_uid: String,
    /// `RUNNER_CONTEXT_NAME`.
    pub action: String,
    /// The digest of the action's input ([`action_runner::identity::DIGEST_LEN`] hex digits).
    pub input_digest: String,
}

impl ActionId {
    /// The identity of the action `ctx` runs with input `digest`, or `None` when it cannot be a
    /// label: without an owner, the action's name is part of the identity, and a name longer
    /// than 63 characters is not a label value (then the run is not retry-safe, which the runner
    /// logs).
    pub fn of(ctx: &ExecutionContext, digest: &InputDigest) -> Option<ActionId> {
        let owner_uid = ctx
            .platform
            .owner_reference
            .as_ref()
            .map(|o| o.uid.clone())
            .filter(|u| !u.is_empty() && u.len() <= MAX_LABEL_VALUE);
        if ctx.name.len() <= MAX_LABEL_VALUE {
            Some(ActionId {
                owner_uid: owner_uid.unwrap_or_else(|| NO_OWNER.into()),
                action: ctx.name.clone(),
                input_digest: digest.finish(),
            })
        } else {
            // A DNS subdomain longer than a label value: the owner alone names the action.
            owner_uid.map(|owner_uid| ActionId {
                owner_uid,
                action: String::new(),
                input_digest: digest.finish(),
            })
        }
    }

    /// The value of helm's `--labels`: `kube-action-runners.io/owner-uid=<uid>,
    /// kube-action-runners.io/action=<name>,kube-action-runners.io/input-digest=<digest>` (the
    /// action label left out when empty).
    pub fn labels_arg(&self) -> String {
        let mut arg = format!("{OWNER_UID_LABEL}={}", self.owner_uid);
        if !self.action.is_empty() {
            arg.push_str(&format!(",{ACTION_LABEL}={}", self.action));
        }
        arg.push_str(&format!(",{INPUT_DIGEST_LABEL}={}", self.input_digest));
        arg
    }

    /// A label selector for Helm's records of this action's releases in a namespace (to find
    /// a release whose name Helm generated): `owner=helm,<labels>`.
    pub fn selector(&self) -> String {
        format!("owner=helm,{}", self.labels_arg())
    }

    /// Whether a record with `labels` is a revision this action made: the same owner, name
    /// and input digest.
    pub fn made(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        label(OWNER_UID_LABEL) == self.owner_uid
            && (self.action.is_empty() || label(ACTION_LABEL) == self.action)
            && label(INPUT_DIGEST_LABEL) == self.input_digest
    }

    /// The owner uid of a record made under this action's name by another owner (not
    /// [`NO_OWNER`]): another Job claims the same `RUNNER_CONTEXT_NAME`.
    pub fn other_owner<'a>(&self, labels: &'a BTreeMap<String, String>) -> Option<&'a str> {
        let same_name = !self.action.is_empty()
            && labels.get(ACTION_LABEL).map(String::as_str) == Some(self.action.as_str());
        labels
            .get(OWNER_UID_LABEL)
            .map(String::as_str)
            .filter(|uid| same_name && *uid != NO_OWNER && *uid != self.owner_uid)
    }
}

/// Who made a record, in words for an error message: `action "x" of owner <uid>` (or `of no
/// owner`), or `Helm without helm-runner's labels`.
pub fn maker(labels: &BTreeMap<String, String>) -> String {
    match (labels.get(ACTION_LABEL), labels.get(OWNER_UID_LABEL)) {
        (Some(action), Some(uid)) if uid == NO_OWNER => format!("action {action:?} of no owner"),
        (Some(action), Some(uid)) => format!("action {action:?} of owner {uid}"),
        (None, Some(uid)) => format!("an action of owner {uid}"),
        _ => "Helm without helm-runner's labels".into(),
    }
}

/// Bytes of a chart's files read into the digest at the most: 64 MiB, above what a chart can
/// hold (Helm's loader refuses a chart archive that unpacks to more than 100 MiB of which no
/// file over 5 MiB, and the chart sandbox checks its own budget before this runs).
const MAX_CHART_DIGEST_BYTES: u64 = 64 * 1024 * 1024;

/// Adds the files of the unpacked chart at `dir` to `digest`: each regular file's path
/// (relative to `dir`, `/`-separated) and content, in path order; directories by their path.
/// Symbolic links and other special files are not followed (the chart sandbox refuses them),
/// and entries whose names start with `..` (a ConfigMap volume's own) are left out.
///
/// # Errors
/// An I/O error reading the tree, or a tree over `MAX_CHART_DIGEST_BYTES` (64 MiB).
pub fn add_chart(digest: &mut InputDigest, dir: &Path) -> std::io::Result<()> {
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            if entry.file_name().as_encoded_bytes().starts_with(b"..") {
                // The kubelet's own entries in a ConfigMap or Secret volume (`..data` and its
                // timestamped target; `AtomicWriter` reserves names starting with `..`, and no
                // key may start so): they differ from pod to pod, and the files they hold are
                // digested under their visible paths.
                continue;
            }
            let path = rel.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path.clone());
                files.push((path, false));
            } else if kind.is_file() {
                files.push((path, true));
            }
        }
    }
    files.sort();
    let mut total = 0u64;
    for (rel, is_file) in files {
        let name = rel.to_string_lossy().replace('\\', "/");
        if !is_file {
            digest.add("chart-dir", name.as_bytes());
            continue;
        }
        let mut bytes = Vec::new();
        let left = MAX_CHART_DIGEST_BYTES - total;
        std::fs::File::open(dir.join(&rel))?
            .take(left + 1)
            .read_to_end(&mut bytes)?;
        total += bytes.len() as u64;
        if total > MAX_CHART_DIGEST_BYTES {
            return Err(std::io::Error::other(format!(
                "the chart holds more than {MAX_CHART_DIGEST_BYTES} bytes"
            )));
        }
        digest.add("chart-file", name.as_bytes());
        digest.add("chart-content", &bytes);
    }
    Ok(())
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
    /// The latest revision was made under this action's name by another owner (the uid): the
    /// action is refused, nothing is written.
    OtherOwner(Record, String),
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
    if let Some(uid) = id.other_owner(&latest.labels) {
        return Decision::OtherOwner(latest.clone(), uid.to_string());
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

/// The check of an attempt against the release's history, in the cluster: where Helm's records
/// are and who asks.
pub(crate) struct Check<'a> {
    /// The runner's client.
    pub client: &'a kube::Client,
    /// The action's context (its name, whether it is a dry run).
    pub ctx: &'a ExecutionContext,
    /// `RUNNER_HELM_DRIVER`.
    pub driver: &'a str,
    /// The release's namespace.
    pub namespace: &'a str,
}

/// What an attempt does once its [`Decision`] is carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// Install with `--replace`: the input's `replace`, or a retried attempt taking over its
    /// predecessor's revision.
    pub replace: bool,
    /// The revision an earlier attempt of this action made: reported, no helm run.
    pub adopted: Option<Record>,
}

impl Check<'_> {
    /// What an attempt of action `id` running `command` on the release `name` does (see
    /// [`decide`]), from the release's history: `known` when the caller read it already (an
    /// upgrade), else read here; a generated name (`None`) is found by the labels of this
    /// action's records. Drivers the runner cannot read ([`storage::reads_driver`]): run helm.
    ///
    /// # Errors
    /// Errors of the list of Helm's records, as [`storage::history`] and
    /// [`storage::records_matching`].
    pub async fn decide(
        &self,
        command: Command,
        id: &ActionId,
        name: Option<&str>,
        known: &[Record],
        replace: bool,
    ) -> Result<Decision, RunnerError> {
        if !storage::reads_driver(self.driver) {
            return Ok(Decision::Run);
        }
        let history = match name {
            // Read already (an upgrade).
            Some(_) if command.needs_release_file() => known.to_vec(),
            Some(name) => storage::history(self.client, self.namespace, self.driver, name).await?,
            None => {
                // A generated name: the release this action made, if any.
                let mine = storage::records_matching(
                    self.client,
                    self.namespace,
                    self.driver,
                    &id.selector(),
                )
                .await?;
                match mine.last().map(|r| r.release_name().to_string()) {
                    Some(name) => mine
                        .into_iter()
                        .filter(|r| r.release_name() == name)
                        .collect(),
                    None => Vec::new(),
                }
            }
        };
        Ok(decide(command, id, &history, replace))
    }

    /// Carries `decision` out for action `id` (`None`: unlabelled, only for the words of an
    /// error) with the input's `replace`: refuses another's release, adopts, marks a pending
    /// revision `failed` (not in a dry run, which adopts and marks nothing), and names the
    /// release (`name`) when an earlier attempt did.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) for [`Decision::NotOurs`]
    /// and [`Decision::OtherOwner`], naming the release and who made it; errors of marking the
    /// revision failed ([`storage::mark_failed`]).
    pub async fn settle(
        &self,
        decision: Decision,
        id: Option<&ActionId>,
        name: &mut Option<String>,
        replace: bool,
    ) -> Result<Attempt, RunnerError> {
        let mut attempt = Attempt {
            replace,
            adopted: None,
        };
        match decision {
            Decision::Run => {}
            Decision::NotOurs(r) => {
                return Err(RunnerError::invalid_input(format!(
                    "release {:?} in namespace {:?} already exists (revision {}, {}, made by {}) \
                     and this action did not install it: install under another name, or upgrade \
                     it",
                    r.release_name(),
                    self.namespace,
                    r.revision,
                    r.status,
                    maker(&r.labels),
                )));
            }
            Decision::OtherOwner(r, uid) => {
                return Err(RunnerError::invalid_input(format!(
                    "release {:?} in namespace {:?}: its revision {} was made by action {:?} of \
                     another owner (uid {uid}; this runner's owner is {}): two Jobs cannot be \
                     one action; give this one its own RUNNER_CONTEXT_NAME",
                    r.release_name(),
                    self.namespace,
                    r.revision,
                    self.ctx.name,
                    id.map_or(NO_OWNER, |i| i.owner_uid.as_str()),
                )));
            }
            _ if self.ctx.dry_run => {}
            Decision::Adopt(r) => {
                tracing::info!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action made this revision: \
                    adopting it, no new revision");
                *name = Some(r.release_name().to_string());
                attempt.adopted = Some(r);
            }
            Decision::Recover(r) => {
                tracing::warn!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action left the release \
                    pending and is gone: marking the revision failed, then going on");
                let why = format!(
                    "Marked failed by helm-runner: the attempt of action {:?} that ran this \
                     operation ended before it",
                    self.ctx.name
                );
                storage::mark_failed(self.client, self.namespace, self.driver, &r, &why).await?;
                *name = Some(r.release_name().to_string());
                attempt.replace = true;
            }
            Decision::Replace(r) => {
                tracing::info!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action failed: going on");
                *name = Some(r.release_name().to_string());
                attempt.replace = true;
            }
        }
        Ok(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> ActionId {
        ActionId {
            owner_uid: "u-1".into(),
            action: "shop".into(),
            input_digest: "d1".into(),
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
            labels.insert(INPUT_DIGEST_LABEL.into(), "d1".into());
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
        // Another Job under the same name: refused, for either command.
        let same_name = rec(1, "deployed", Some("u-2"));
        for c in [Install, Upgrade] {
            assert_eq!(
                d(c, std::slice::from_ref(&same_name), true),
                Decision::OtherOwner(same_name.clone(), "u-2".into())
            );
        }
        let mut theirs = rec(1, "deployed", Some("u-2"));
        theirs.labels.insert(ACTION_LABEL.into(), "another".into());
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
        let mut other = rec(2, "pending-upgrade", Some("u-3"));
        other.labels.insert(ACTION_LABEL.into(), "another".into());
        let history = [theirs, other];
        assert_eq!(d(Upgrade, &history, false), Decision::Run);
    }

    /// The same owner and name with another input is a new action: an upgrade makes a new
    /// revision (never adopts), a pending revision of another input is not recovered, and a
    /// by-hand run (no owner) never counts as another owner.
    #[test]
    fn another_input_is_another_action() {
        use Command::{Install, Upgrade};
        let mut other_input = rec(1, "deployed", Some("u-1"));
        other_input
            .labels
            .insert(INPUT_DIGEST_LABEL.into(), "d0".into());
        let h = std::slice::from_ref(&other_input);
        assert_eq!(decide(Upgrade, &id(), h, false), Decision::Run);
        assert_eq!(
            decide(Install, &id(), h, false),
            Decision::NotOurs(other_input.clone())
        );
        let mut pending = other_input.clone();
        pending.status = "pending-upgrade".into();
        assert_eq!(
            decide(Upgrade, &id(), std::slice::from_ref(&pending), false),
            Decision::Run
        );
        // Made by hand under this name (no owner), now run by a Job: not another owner.
        let mut by_hand = rec(1, "deployed", Some(NO_OWNER));
        by_hand
            .labels
            .insert(INPUT_DIGEST_LABEL.into(), "d1".into());
        assert_eq!(
            decide(Upgrade, &id(), std::slice::from_ref(&by_hand), false),
            Decision::Run
        );
        // A by-hand run of the same input adopts its own earlier run.
        let no_owner = ActionId {
            owner_uid: NO_OWNER.into(),
            ..id()
        };
        assert_eq!(
            decide(Upgrade, &no_owner, std::slice::from_ref(&by_hand), false),
            Decision::Adopt(by_hand.clone())
        );
    }

    #[test]
    fn chart_digest_covers_paths_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c/templates")).unwrap();
        std::fs::write(dir.path().join("c/Chart.yaml"), "name: c\n").unwrap();
        std::fs::write(dir.path().join("c/templates/a.yaml"), "a: 1\n").unwrap();
        let of = |d: &Path| {
            let mut digest = InputDigest::new();
            add_chart(&mut digest, d).unwrap();
            digest.finish()
        };
        let first = of(dir.path());
        assert_eq!(first, of(dir.path()));
        std::fs::write(dir.path().join("c/templates/a.yaml"), "a: 2\n").unwrap();
        let second = of(dir.path());
        assert_ne!(first, second);
        std::fs::rename(
            dir.path().join("c/templates/a.yaml"),
            dir.path().join("c/templates/b.yaml"),
        )
        .unwrap();
        assert_ne!(second, of(dir.path()));
    }

    #[test]
    fn labels_and_selector() {
        assert_eq!(
            id().labels_arg(),
            "kube-action-runners.io/owner-uid=u-1,kube-action-runners.io/action=shop,\
             kube-action-runners.io/input-digest=d1"
        );
        assert_eq!(
            id().selector(),
            "owner=helm,kube-action-runners.io/owner-uid=u-1,kube-action-runners.io/action=shop,\
             kube-action-runners.io/input-digest=d1"
        );
        let mut labels = rec(1, "deployed", Some("u-1")).labels;
        assert!(id().made(&labels));
        labels.insert(INPUT_DIGEST_LABEL.into(), "d2".into());
        assert!(!id().made(&labels), "another input");
        labels.insert(INPUT_DIGEST_LABEL.into(), "d1".into());
        labels.insert(ACTION_LABEL.into(), "other".into());
        assert!(!id().made(&labels));
    }
}
