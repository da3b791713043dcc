//! The Helm action runner: installs, upgrades, uninstalls or rolls back a Helm release
//! (`RUNNER_COMMAND`, [`Command`]) by driving the helm CLI (Helm 4, the image's, or Helm 3; see
//! [`version`]), then writes the release file and the additional output file in Capact's shapes.
//!
//! Each command is a module of [`verbs`] ([`verbs::install`] for install and upgrade,
//! [`verbs::uninstall`], [`verbs::rollback`]) with its own input ([`manifest`]: a field of
//! another command is refused while the manifest is parsed). [`HelmRunner`] hands each step of
//! [`ActionRunner`] over to the command's verb and keeps what the commands share: the redactor
//! of everything secret, helm's version, the release's history, spawning and stopping helm,
//! the report of a failed helm and the diagnosis of its wait.
//!
//! Which step runs what:
//!
//! - [`ActionRunner::prepare`] reads and checks everything local, without the cluster and
//!   without helm: the variables ([`HelmVars`], as the Manager read them, checked into
//!   [`HelmConfig`]), the release file, the values files, the
//!   chart source, a private repository's credential and CA files.
//! - [`ActionRunner::start`] gets everything ready without changing the release: it reads the
//!   `valuesFrom` ConfigMaps and Secrets ([`sources`]), runs `helm version`, reads the release's
//!   history (every command but install: the stored values are redacted too), and, for an
//!   install or upgrade, runs helm to log in to a private chart source and fetch the chart
//!   (`helm pull`), and settles what a retried attempt does ([`ownership`]; the one write here:
//!   a `pending-*` revision an earlier attempt left is marked `failed`). An uninstall of a
//!   release already gone and a rollback to a revision not in the history are decided here
//!   (see [`verbs::uninstall`], [`verbs::rollback`]). Its status, which the Manager reports
//!   before the operation runs, is `{"phase": "Installing"}` (`Upgrading`, `Uninstalling`,
//!   `RollingBack`) with the release and helm's version.
//! - [`ActionRunner::wait_for_completion`] runs the operation itself, `helm install`, `helm
//!   upgrade`, `helm uninstall` or `helm rollback` (with `--wait` it returns when the release is
//!   ready, or gone, or failed), checks what Helm stored, writes the outputs (rendering the
//!   additional output with `helm template`) and reports the final revision and its status
//!   (`{"phase": "Installed", "release": {..., "revision": 2, "status": "deployed"}}`).
//! - On SIGTERM, SIGINT or `RUNNER_TIMEOUT`, [`ActionRunner::cancel`] forwards SIGTERM to helm
//!   and gives it [`cli::STOP_GRACE`] to record the release as `failed` before it is killed.
//!
//! See `cmd/helm-runner/README.md` for the variables, the input manifest and the outputs.

#![warn(missing_docs)]

pub mod chart;
pub mod cli;
pub mod config;
pub mod diagnose;
mod files;
pub mod input;
pub mod manifest;
pub mod output;
pub mod ownership;
pub mod preflight;
pub mod redact;
pub mod render;
pub mod sources;
pub mod storage;
pub mod values;
pub mod verbs;
pub mod version;

use std::ffi::OsString;
use std::time::Duration;

use action_runner::error::ErrorKind;
use action_runner::{
    ActionRunner, Config, RunnerError, StartInput, StartOutput, WaitForCompletionInput,
    WaitForCompletionOutput,
};
use serde_json::{Value, json};

pub use config::{Command, HelmConfig, HelmVars};
pub use input::{Chart, ChartRelease, Values};
pub use manifest::HelmInput;

use cli::{Helm, HelmChild, Redactor, STOP_GRACE, Stopped};
use storage::Record;
use verbs::install::ChartVerb;
use verbs::rollback::Rollback;
use verbs::uninstall::Uninstall;
use verbs::{Cx, Plan, PrepareCx, Stage, Target, Verb, phase};
use version::HelmVersion;

/// The Helm runner: hands each step to the verb of `RUNNER_COMMAND` ([`verbs`]) and keeps what
/// the commands share. [`prepare`](ActionRunner::prepare) reads and checks everything local;
/// [`start`](ActionRunner::start) reads what the cluster holds, fetches the chart and decides
/// what helm is to do (its one write: a revision an earlier attempt left pending is marked
/// `failed`); [`wait_for_completion`](ActionRunner::wait_for_completion) runs the helm
/// operation (`helm install`, `upgrade`, `uninstall` or `rollback`) and writes the outputs;
/// [`cancel`](ActionRunner::cancel) stops it. See the crate's documentation for each step.
#[derive(Debug, Default)]
pub struct HelmRunner {
    /// Set by `prepare`.
    run: Option<Run>,
}

impl HelmRunner {
    /// A new runner.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A run, as `prepare` found it and `start` made it ready.
#[derive(Debug)]
struct Run {
    config: HelmConfig,
    target: Target,
    verb: AnyVerb,
    /// Every secret read until helm is set up; from then on, helm's ([`Helm::redactor`]).
    redactor: Redactor,
    /// Set by `start`: the operation, ready to run or running.
    operation: Option<Operation>,
}

/// The verb of `RUNNER_COMMAND`.
#[derive(Debug)]
enum AnyVerb {
    /// Boxed: it holds far more than the others.
    Chart(Box<ChartVerb>),
    Uninstall(Uninstall),
    Rollback(Rollback),
}

/// `$body` with `$v` bound to the [`Verb`] in `$verb` (an [`AnyVerb`]), whichever it is.
macro_rules! each_verb {
    ($verb:expr, $v:ident => $body:expr) => {
        match $verb {
            AnyVerb::Chart($v) => $body,
            AnyVerb::Uninstall($v) => $body,
            AnyVerb::Rollback($v) => $body,
        }
    };
}

/// What `start` got ready and `wait_for_completion` runs.
#[derive(Debug)]
struct Operation {
    /// helm, with the redactor of every secret read.
    helm: Helm,
    version: HelmVersion,
    plan: Plan,
    /// `helm install ...` and the rest (empty unless the plan runs helm).
    argv: Vec<OsString>,
    /// Prefix of errors: `helm install ns/name`.
    what: String,
    /// The helm process, once started (kept here, not in the wait's future, so that a cancelled
    /// wait leaves it to [`ActionRunner::cancel`]).
    child: Option<HelmChild>,
    /// helm waits for the release's workloads: a failed wait is diagnosed.
    waits: bool,
}

impl ActionRunner for HelmRunner {
    type Config = HelmVars;
    type Args = HelmInput;

    fn name(&self) -> &'static str {
        "helm"
    }

    fn prepare(
        &mut self,
        common: &Config,
        own: HelmVars,
        args: &HelmInput,
    ) -> Result<(), RunnerError> {
        let config = HelmConfig::new(&own, &common.process)?;
        if args.command() != Some(config.command) {
            return Err(RunnerError::failed(format!(
                "the input manifest was read for another command than RUNNER_COMMAND={}",
                config.command.as_str()
            )));
        }
        let mut redactor = Redactor::default();
        let cx = PrepareCx {
            ctx: &common.context,
            config: &config,
            redactor: &mut redactor,
        };
        let (verb, target) = match args {
            HelmInput::Install(i) | HelmInput::Upgrade(i) => {
                prepared(ChartVerb::prepare(cx, i), |v| AnyVerb::Chart(Box::new(v)))?
            }
            HelmInput::Uninstall(i) => prepared(Uninstall::prepare(cx, i), AnyVerb::Uninstall)?,
            HelmInput::Rollback(i) => prepared(Rollback::prepare(cx, i), AnyVerb::Rollback)?,
            HelmInput::Unchecked => unreachable!("HelmConfig::new refuses it"),
        };
        self.run = Some(Run {
            config,
            target,
            verb,
            redactor,
            operation: None,
        });
        Ok(())
    }

    async fn start(&mut self, input: StartInput<HelmInput>) -> Result<StartOutput, RunnerError> {
        let Some(run) = self.run.as_mut() else {
            return Err(RunnerError::invalid_input(
                "the Helm runner was started without prepare",
            ));
        };
        let (command, dry_run) = (run.config.command, input.ctx.dry_run);
        let verb = &mut run.verb;
        if let AnyVerb::Chart(v) = verb {
            v.read_sources(&input, &run.target, &mut run.redactor)
                .await?;
        }
        // The manifest's `timeout` for this operation, else `RUNNER_TIMEOUT`'s.
        let timeout = input::timeout(input.args.timeout())?.or(input.ctx.timeout);
        let mut helm = helm(&run.config, timeout, run.redactor.clone());
        input
            .activity
            .set(format!("reading the version of {}", helm.binary.display()));
        let version = helm.version().await?;
        tracing::info!(helm = %version, binary = %helm.binary.display(),
            server_side_apply_by_default = version.server_side_apply_by_default(), "helm version");
        let history = match (command.needs_release_file(), &run.target.name) {
            (true, Some(name)) => {
                read_history(&input, &run.config, &run.target.namespace, name, &mut helm).await?
            }
            _ => Vec::new(),
        };

        let cx = Cx {
            config: &run.config,
            target: &mut run.target,
            helm: &mut helm,
            version: &version,
            input: &input,
        };
        let plan = each_verb!(verb, v => v.plan(cx, history).await)?;
        let mut argv = Vec::new();
        if plan == Plan::Run {
            argv = each_verb!(verb, v => v.args(&run.target, &version, dry_run));
            argv.extend(helm.cluster_args(&run.target.namespace));
        }
        let mut status = json!({
            "phase": phase(command, Stage::Running),
            "release": {"name": run.target.name, "namespace": run.target.namespace},
            "helmVersion": version.text,
        });
        if let Some(status) = status.as_object_mut() {
            status.extend(each_verb!(verb, v => v.status()));
        }
        run.operation = Some(Operation {
            what: verbs::what(command, &run.target),
            waits: each_verb!(verb, v => v.waits(dry_run)),
            helm,
            version,
            plan,
            argv,
            child: None,
        });
        Ok(StartOutput {
            status,
            ..StartOutput::default()
        })
    }

    async fn wait_for_completion(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<WaitForCompletionOutput, RunnerError> {
        let Some(Run {
            config,
            target,
            verb,
            operation: Some(op),
            ..
        }) = self.run.as_mut()
        else {
            return Err(RunnerError::failed(
                "the Helm operation did not run (start did not finish)",
            ));
        };
        let ran = match &op.plan {
            Plan::Skip => None,
            Plan::Adopt(r) => Some(r.release_json().map_err(|e| {
                RunnerError::failed(format!(
                    "Helm's record {}/{} could not be read",
                    target.namespace, r.object
                ))
                .because(e)
            })),
            Plan::Run => {
                if op.child.is_none() {
                    tracing::info!(command = config.command.as_str(),
                        release = target.name.as_deref().unwrap_or("<generated>"),
                        namespace = %target.namespace, dry_run = input.ctx.dry_run,
                        helm = %op.version, "running helm");
                }
                Some(op.run().await)
            }
        };
        let stdout = match ran {
            None => None,
            Some(Ok(stdout)) => Some(stdout),
            // Helm ran and failed: the action completed, unsuccessfully; what Helm stored is
            // reported with it. Errors of access (exit 3, 4) stay errors.
            Some(Err(e)) if e.kind() == ErrorKind::Failed => {
                return Ok(failed(e, config, target, op, &input).await);
            }
            Some(Err(e)) => return Err(e),
        };
        let cx = Cx {
            config,
            target,
            helm: &mut op.helm,
            version: &op.version,
            input: &input,
        };
        each_verb!(verb, v => v.outcome(cx, stdout).await)
    }

    /// Stops helm if it runs: SIGTERM, [`STOP_GRACE`] for Helm to record the release as
    /// `failed`, then SIGKILL; the note says how it stopped and what Helm stored.
    async fn cancel(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<Option<String>, RunnerError> {
        let Some(Run {
            config,
            target,
            operation: Some(op),
            ..
        }) = self.run.as_mut()
        else {
            return Ok(None);
        };
        let Some(child) = op.child.as_mut() else {
            return Ok(Some("helm had not started".into()));
        };
        let how = match child.stop(STOP_GRACE).await {
            Stopped::AlreadyExited(_) => "helm had already exited".to_string(),
            Stopped::Terminated(Ok(_)) => "helm finished after SIGTERM".to_string(),
            Stopped::Terminated(Err(e)) => format!("helm stopped on SIGTERM ({e})"),
            Stopped::Killed => {
                format!("helm did not stop within {STOP_GRACE:?} of SIGTERM and was killed")
            }
        };
        let Some(r) = latest_record(config, target, &input).await else {
            return Ok(Some(how));
        };
        let mut note = format!(
            "{how}; Helm stores revision {} of the release as {:?}",
            r.revision, r.status
        );
        if let Some((line, not_ready)) = op.diagnosis(&input.client, &target.namespace, &r).await {
            note = format!("{note}; {line}");
            input.progress.set(json!({ "notReady": not_ready }));
        }
        Ok(Some(note))
    }

    fn cancel_timeout(&self) -> Duration {
        // The grace period, then the kill, one list of Helm's records, and the diagnosis of
        // the wait.
        STOP_GRACE + Duration::from_secs(3) + DIAGNOSIS_TIMEOUT
    }
}

/// What [`Verb::prepare`] made, its verb wrapped by `wrap`.
fn prepared<V>(
    made: Result<(V, Target), RunnerError>,
    wrap: fn(V) -> AnyVerb,
) -> Result<(AnyVerb, Target), RunnerError> {
    made.map(|(verb, target)| (wrap(verb), target))
}

/// helm as `config` says (with `--kubeconfig` when `KUBECONFIG` names one file), with `timeout`
/// (`--timeout`) and `redactor`.
fn helm(config: &HelmConfig, timeout: Option<Duration>, redactor: Redactor) -> Helm {
    Helm {
        binary: config.helm_binary.clone(),
        driver: config.driver.clone(),
        repository_cache: config.repository_cache.clone(),
        kubeconfig: config.kubeconfig.clone(),
        timeout,
        config_env: Vec::new(),
        redactor,
    }
}

/// The history of release `name` in `namespace` (Helm's records, oldest first). An upgrade may
/// reuse (`--reuse-values`) or print back the values stored with the release's earlier
/// revisions, a rollback restores them: they are secrets too, added to `helm`'s redactor.
///
/// # Errors
/// As [`storage::history`].
async fn read_history(
    input: &StartInput<HelmInput>,
    config: &HelmConfig,
    namespace: &str,
    name: &str,
    helm: &mut Helm,
) -> Result<Vec<Record>, RunnerError> {
    input.activity.set(format!(
        "reading the history of release {name:?} in namespace {namespace:?}"
    ));
    let history = storage::history(&input.client, namespace, &config.driver, name).await?;
    for r in &history {
        match r.release() {
            Ok(stored) => {
                if let Some(config) = stored.config {
                    helm.redactor.add_values(&Value::Object(config));
                }
            }
            Err(e) => tracing::warn!(revision = r.revision, error = %e,
                "a stored revision of the release could not be decoded; its values are not redacted"),
        }
    }
    Ok(history)
}

/// The end of a helm that failed (`e`): the action completed, unsuccessfully. The status holds
/// the newest revision Helm stored and, when helm waited, why the wait failed.
async fn failed(
    e: RunnerError,
    config: &HelmConfig,
    target: &Target,
    op: &Operation,
    input: &WaitForCompletionInput,
) -> WaitForCompletionOutput {
    let stored = latest_record(config, target, input).await;
    let (name, ns) = (&target.name, &target.namespace);
    let release = match &stored {
        Some(r) => {
            json!({"name": name, "namespace": ns, "revision": r.revision, "status": r.status})
        }
        None => json!({"name": name, "namespace": ns}),
    };
    let mut message = e.to_string();
    let mut status = json!({
        "phase": phase(config.command, Stage::Failed),
        "release": release,
        "helmVersion": op.version.text,
    });
    let diagnosis = match &stored {
        Some(r) => op.diagnosis(&input.client, ns, r).await,
        None => None,
    };
    if let Some((line, not_ready)) = diagnosis {
        message = format!("{message}; {line}");
        status["notReady"] = not_ready;
    }
    WaitForCompletionOutput {
        succeeded: false,
        message,
        status,
    }
}

/// The newest revision Helm stores of the release; `None` when it has no name yet, in a dry
/// run (Helm stored nothing), or when the list fails (this only adds to a report).
async fn latest_record(
    config: &HelmConfig,
    target: &Target,
    input: &WaitForCompletionInput,
) -> Option<Record> {
    match &target.name {
        Some(name) if !input.ctx.dry_run => {
            storage::records(&input.client, &target.namespace, &config.driver, name)
                .await
                .ok()
                .and_then(|r| r.into_iter().last())
        }
        _ => None,
    }
}

/// Bound on reading why the wait failed ([`diagnose`]).
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_secs(4);

impl Operation {
    /// Runs helm (spawned on the first call; a wait cut short leaves it running for
    /// [`ActionRunner::cancel`]) and returns its standard output.
    ///
    /// # Errors
    /// As [`Helm::spawn`] and [`HelmChild::wait`].
    async fn run(&mut self) -> Result<Vec<u8>, RunnerError> {
        if self.child.is_none() {
            self.child = Some(self.helm.spawn(&self.what, &self.argv)?);
        }
        self.child.as_mut().expect("spawned above").wait().await
    }

    /// Why helm's wait for the release of `record` (its latest revision) failed: one line and
    /// the structured list (`notReady` of the status), redacted; `None` when helm did not wait,
    /// everything is ready, the record holds no manifest, or the reads take longer than
    /// [`DIAGNOSIS_TIMEOUT`].
    async fn diagnosis(
        &self,
        client: &kube::Client,
        namespace: &str,
        record: &Record,
    ) -> Option<(String, Value)> {
        if !self.waits {
            return None;
        }
        let json: Value = serde_json::from_slice(&record.release_json().ok()?).ok()?;
        let manifest = json.get("manifest")?.as_str()?;
        let (not_ready, more) = tokio::time::timeout(
            DIAGNOSIS_TIMEOUT,
            diagnose::not_ready(client, manifest, namespace),
        )
        .await
        .ok()?;
        if not_ready.is_empty() {
            return None;
        }
        let redactor = &self.helm.redactor;
        let line = redactor.redact(&diagnose::describe(&not_ready, more));
        let list = serde_json::to_value(&not_ready).expect("the diagnosis serializes");
        Some((line, redactor.redact_value(&list)))
    }
}
