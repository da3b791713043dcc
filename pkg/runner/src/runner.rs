//! The `ActionRunner` trait that each runner implements, and its inputs and outputs.

use std::future::Future;

use serde::Deserializer;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::context::ExecutionContext;
use crate::error::RunnerError;
use crate::identity::InputDigest;

/// One kind of action (an Argo Workflow, a Helm release, ...). The [`Manager`](crate::Manager)
/// drives it: [`prepare`](Self::prepare), then [`start`](Self::start), then
/// [`wait_for_completion`](Self::wait_for_completion), each at most once, in that order, so a
/// runner may keep state from `start` in `self`.
///
/// Its configuration enters through one door: the Manager reads the environment once, into the
/// common [`Config`] and the runner's own [`Config`](Self::Config), and hands both to
/// [`prepare`](Self::prepare) (and to the parse of the manifest, [`FromManifest`]); nothing
/// below the Manager reads the environment, so a test hands them in as it likes.
///
/// A runner written in another crate plugs in without any change to this crate: implement the
/// trait and hand the runner to [`Manager::new`](crate::Manager::new).
pub trait ActionRunner: Send {
    /// The runner's own variables. The Manager deserializes them with envy from the
    /// environment's `RUNNER_*` variables (field `argo_logs` is `RUNNER_ARGO_LOGS`), with the
    /// common ones, before anything else is read. Keep them text (`Option<String>`) and parse
    /// them in [`prepare`](Self::prepare) with [`crate::vars`], so that a bad value is one line
    /// naming the variable; [`NoConfig`] when the runner reads none.
    type Config: DeserializeOwned + Send;

    /// The input manifest's shape. The Manager parses the file at `RUNNER_INPUT_MANIFEST_PATH`
    /// (YAML or JSON) into it; a parse error is an input error (exit 2) that names the line and
    /// column. Any `Deserialize` type will do; one whose shape depends on the configuration
    /// implements [`FromManifest`] itself.
    type Args: FromManifest<Self::Config> + Send;

    /// The runner's name, as used in logs and in the reported status (for example `argo`).
    fn name(&self) -> &'static str;

    /// Checks the parsed input and the runner's own configuration (`own`) against the common
    /// configuration (`config`, whose [`context`](Config::context) is the action's), without
    /// touching the cluster, and keeps what the later steps need. Called before the Kubernetes
    /// client is built.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) naming the field or variable at fault.
    fn prepare(
        &mut self,
        _config: &Config,
        _own: Self::Config,
        _args: &Self::Args,
    ) -> Result<(), RunnerError> {
        Ok(())
    }

    /// Starts the action (for example creates the Workflow). Must be idempotent for a retried
    /// Job pod: finding its own earlier object is not an error.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::error::ErrorKind) only when nothing was written; otherwise
    /// [`ErrorKind::Cluster`](crate::error::ErrorKind) or [`ErrorKind::Failed`](crate::error::ErrorKind).
    fn start(
        &mut self,
        input: StartInput<Self::Args>,
    ) -> impl Future<Output = Result<StartOutput, RunnerError>> + Send;

    /// Waits until the action started by [`start`](Self::start) has finished. The Manager bounds
    /// the wait by `RUNNER_TIMEOUT` and cancels it (drops the future) on SIGTERM or SIGINT.
    ///
    /// # Errors
    /// [`ErrorKind::Cluster`](crate::error::ErrorKind) when the outcome cannot be observed; [`ErrorKind::Failed`](crate::error::ErrorKind)
    /// when the action disappeared (for example its object was deleted).
    fn wait_for_completion(
        &mut self,
        input: WaitForCompletionInput,
    ) -> impl Future<Output = Result<WaitForCompletionOutput, RunnerError>> + Send;

    /// Called when the wait was cut short, by SIGTERM or SIGINT or by `RUNNER_TIMEOUT`, before the
    /// final report, for at most [`CANCEL_TIMEOUT`]: the runner may
    /// stop what it started. Returns a note for the final message (for example what it stopped);
    /// structured facts for the final `runnerStatus` go through `input.progress` (the latest
    /// progress is merged into the final status, as during the wait). By default nothing is
    /// done: the action is left running.
    ///
    /// # Errors
    /// When stopping failed; the Manager adds it to the message, the exit code stays.
    fn cancel(
        &mut self,
        _input: WaitForCompletionInput,
    ) -> impl Future<Output = Result<Option<String>, RunnerError>> + Send {
        async { Ok(None) }
    }

    /// How long [`cancel`](Self::cancel) may take; by default
    /// [`CANCEL_TIMEOUT`] (5 s). A runner that must give a
    /// child process time to stop cleanly may ask for more, at most
    /// [`MAX_CANCEL_TIMEOUT`] (the Manager caps it), so
    /// that, with the final report, the runner stops within Kubernetes' default
    /// `terminationGracePeriodSeconds` of 30 s.
    fn cancel_timeout(&self) -> std::time::Duration {
        CANCEL_TIMEOUT
    }
}

/// How the Manager parses the input manifest into a runner's [`Args`](ActionRunner::Args),
/// given the configuration (`C`: the runner's own, [`ActionRunner::Config`]).
///
/// Every `Deserialize` type has it, through its own `Deserialize` (the configuration is not
/// looked at). A runner whose manifest's shape depends on its configuration implements it
/// itself: helm-runner parses the manifest in the shape of `RUNNER_COMMAND`'s command, so that
/// another command's field is refused with its line and column.
pub trait FromManifest<C>: Sized {
    /// Deserializes the manifest's one document from `d`.
    ///
    /// # Errors
    /// The deserializer's; the Manager makes them an input error naming the manifest.
    fn from_manifest<'de, D: Deserializer<'de>>(
        config: &Config,
        own: &C,
        d: D,
    ) -> Result<Self, D::Error>;
}

impl<T: DeserializeOwned, C> FromManifest<C> for T {
    fn from_manifest<'de, D: Deserializer<'de>>(
        _config: &Config,
        _own: &C,
        d: D,
    ) -> Result<Self, D::Error> {
        T::deserialize(d)
    }
}

/// The [`ActionRunner::Config`] of a runner that reads no variable of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct NoConfig {}

/// How long [`ActionRunner::cancel`] may take by default, within the 30 s Kubernetes allows
/// after SIGTERM (`terminationGracePeriodSeconds`; the final report then has
/// [`REPORT_AFTER_SIGNAL_TIMEOUT`](crate::manager::REPORT_AFTER_SIGNAL_TIMEOUT)).
pub const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most [`ActionRunner::cancel_timeout`] may ask for: 15 s, which with
/// [`REPORT_AFTER_SIGNAL_TIMEOUT`](crate::manager::REPORT_AFTER_SIGNAL_TIMEOUT) (10 s) stays
/// within the 30 s Kubernetes allows after SIGTERM.
pub const MAX_CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Input of [`ActionRunner::start`].
#[derive(Clone)]
pub struct StartInput<A> {
    /// The execution context.
    pub ctx: ExecutionContext,
    /// The parsed input manifest.
    pub args: A,
    /// A Kubernetes client (in-cluster configuration, or the kubeconfig).
    pub client: kube::Client,
    /// The digest of the action's input so far (the runner's name and the manifest as read):
    /// the runner adds what else it acts on and stores the result with what it creates
    /// ([`crate::identity`]).
    pub digest: InputDigest,
    /// Where the runner says what it is doing (see [`Activity`]), so that a start cut short by
    /// `RUNNER_TIMEOUT` or a signal says what it was waiting on.
    pub activity: Activity,
}

/// What [`ActionRunner::start`] is doing right now, in a few words (for example `helm pull
/// nginx from https://charts.example.com`): the Manager quotes the latest when the start is cut
/// short. Cheap to clone; never blocks for long.
#[derive(Clone, Debug, Default)]
pub struct Activity(std::sync::Arc<std::sync::Mutex<String>>);

impl Activity {
    /// Replaces what the runner says it is doing.
    pub fn set(&self, what: impl Into<String>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = what.into();
    }

    /// The latest [`set`](Self::set), or an empty string.
    pub fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Output of [`ActionRunner::start`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StartOutput {
    /// Runner-specific status, reported as `runnerStatus` (for example a reference to the
    /// created Workflow). Any JSON value.
    pub status: serde_json::Value,
    /// The Kubernetes objects the action is carried out by (for example the Workflow): the
    /// Manager records the action's Events on them as well as on the owner.
    pub objects: Vec<k8s_openapi::api::core::v1::ObjectReference>,
    /// Whether a retried pod found the action its predecessor started (and attached to it)
    /// rather than starting it: the Event is then `Adopted`, not `Started`.
    pub adopted: bool,
}

/// Input of [`ActionRunner::wait_for_completion`].
#[derive(Clone)]
pub struct WaitForCompletionInput {
    /// The execution context.
    pub ctx: ExecutionContext,
    /// A Kubernetes client.
    pub client: kube::Client,
    /// Where the runner tells how the action is going while it waits (see [`Progress`]).
    pub progress: Progress,
}

/// Output of [`ActionRunner::wait_for_completion`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaitForCompletionOutput {
    /// Whether the action succeeded.
    pub succeeded: bool,
    /// A one-line human-readable outcome (for Argo, the Workflow's `status.message`).
    pub message: String,
    /// Structured facts about the outcome (for Argo: the failed nodes, the Workflow's outputs):
    /// a JSON object whose keys the Manager sets in the reported `runnerStatus`, beside the start
    /// status (a key of both is replaced). `null` adds nothing.
    pub status: serde_json::Value,
}

/// How the runner reports progress while it waits: each [`set`](Self::set) replaces the last
/// progress object; the Manager writes the latest one into `runnerStatus` (its keys set as
/// [`WaitForCompletionOutput::status`]'s are) at most once per
/// [`PROGRESS_INTERVAL`](crate::manager::PROGRESS_INTERVAL), so a runner may call it on every
/// change it sees. Cheap to clone; never blocks.
#[derive(Clone, Debug)]
pub struct Progress(std::sync::Arc<tokio::sync::watch::Sender<serde_json::Value>>);

impl Progress {
    /// A progress handle and the receiver the Manager reads it from.
    pub fn channel() -> (Self, tokio::sync::watch::Receiver<serde_json::Value>) {
        let (tx, rx) = tokio::sync::watch::channel(serde_json::Value::Null);
        (Progress(std::sync::Arc::new(tx)), rx)
    }

    /// A handle whose reports go nowhere (for tests and callers without a reporter).
    pub fn discard() -> Self {
        Self::channel().0
    }

    /// Replaces the progress with `progress` (a JSON object), unless it is unchanged.
    pub fn set(&self, progress: serde_json::Value) {
        self.0.send_if_modified(|old| {
            let changed = *old != progress;
            if changed {
                *old = progress;
            }
            changed
        });
    }
}
