//! The Helm action runner: installs, upgrades, uninstalls or rolls back a Helm release by driving
//! the helm CLI (Helm 4, the image's, or Helm 3; see [`version`]), then writes the release file
//! and the additional output file in Capact's shapes (`RUNNER_COMMAND`, [`Command`]).
//!
//! `uninstall` and `rollback` act on the release the release file names; [`lifecycle`] decides
//! from its history, before helm runs, whether there is anything to do (an uninstall of a release
//! already gone succeeds) and which revision a rollback goes to (one not in the history is an
//! input error); their statuses are `Uninstalling` → `Uninstalled`/`UninstallFailed` and
//! `RollingBack` → `RolledBack`/`RollbackFailed`. What follows describes install and upgrade;
//! the others follow the same steps without a chart.
//!
//! [`ActionRunner::start`] gets everything ready without touching the release: it reads the
//! `valuesFrom` ConfigMaps and Secrets ([`sources`]) and helm's version, fetches the chart, and
//! for an upgrade reads the release's stored values (so that they are redacted too). Its status, which the Manager reports before helm runs, is
//! `{"phase": "Installing"}` or `{"phase": "Upgrading"}` with the release and helm's version.
//! [`ActionRunner::wait_for_completion`] runs `helm install`/`helm upgrade` (with `--wait` it
//! returns when the release is ready or failed), checks what Helm stored, writes the outputs and
//! reports the final revision and its status (`{"phase": "Installed", "release": {..., "revision":
//! 2, "status": "deployed"}}`). On SIGTERM, SIGINT or `RUNNER_TIMEOUT`,
//! [`ActionRunner::cancel`] forwards SIGTERM to helm and gives it [`cli::STOP_GRACE`] to record
//! the release as `failed` before it is killed.
//!
//! See `cmd/helm-runner/README.md` for the variables, the input manifest and the outputs.

pub mod chart;
pub mod cli;
pub mod config;
pub mod diagnose;
mod files;
pub mod input;
pub mod lifecycle;
pub mod output;
pub mod ownership;
pub mod redact;
pub mod render;
pub mod sources;
pub mod storage;
pub mod version;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use action_runner::{
    ActionRunner, ExecutionContext, RunnerError, StartInput, StartOutput, WaitForCompletionInput,
    WaitForCompletionOutput,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub use config::{Command, HelmConfig};
pub use input::{Chart, ChartRelease, HelmInput, Values};

use chart::ChartSource;
use cli::{Helm, HelmChild, Redactor, STOP_GRACE, Stopped};
use output::ReleaseRef;
use ownership::{ActionId, Decision};
use version::HelmVersion;

/// The Helm runner. [`prepare`](ActionRunner::prepare) reads and checks everything local
/// (variables, release file, values files, chart source, a private repository's credential
/// and CA files); [`start`](ActionRunner::start) runs Helm and writes the outputs;
/// [`wait_for_completion`](ActionRunner::wait_for_completion) returns the outcome stored by
/// `start`.
#[derive(Debug, Default)]
pub struct HelmRunner {
    prepared: Option<Prepared>,
    /// Set by `start`: the operation, ready to run or running.
    operation: Option<Operation>,
}

/// What `start` got ready and `wait_for_completion` runs.
#[derive(Debug)]
struct Operation {
    helm: Helm,
    version: HelmVersion,
    /// `helm install ...` or `helm upgrade ...`.
    argv: Vec<OsString>,
    /// Prefix of errors: `helm install ns/name`.
    what: String,
    /// The helm process, once started (kept here, not in the wait's future, so that a cancelled
    /// wait leaves it to [`ActionRunner::cancel`]).
    child: Option<HelmChild>,
    /// Holds the chart and the values file while helm runs.
    scratch: tempfile::TempDir,
    chart_dir: PathBuf,
    /// `output` of the input manifest.
    output: input::OutputArgs,
    /// The revision an earlier attempt of this action made, which this attempt reports
    /// instead of running helm ([`Decision::Adopt`]).
    adopted: Option<storage::Record>,
    /// Helm waits for the release's workloads (`wait`, not a dry run): a failure is diagnosed.
    waits: bool,
    /// Uninstall and rollback: what the runner decided before helm runs.
    lifecycle: Option<Lifecycle>,
}

/// What `start` decided for an uninstall or a rollback.
#[derive(Debug)]
enum Lifecycle {
    /// Uninstall: run helm (`None`), or the release is already gone and why (no helm run).
    Uninstall(Option<String>),
    /// Rollback to this revision.
    Rollback(u64),
}

impl HelmRunner {
    /// A new runner.
    pub fn new() -> Self {
        Self::default()
    }
}

/// What `prepare` found out.
#[derive(Debug)]
struct Prepared {
    config: HelmConfig,
    /// Install: `Some(name)` or `None` with `--generate-name`; upgrade: the release's name.
    release_name: Option<String>,
    /// Namespace of the release: the platform namespace (install) or the release file's
    /// (upgrade; as in Capact, which lets an action upgrade a release in another namespace).
    namespace: String,
    /// The chart, for an upgrade merged from the release file and the input; for an uninstall
    /// or a rollback the release file's.
    chart: Chart,
    /// Where the chart comes from (install, upgrade; `None` for uninstall and rollback, which
    /// use no chart).
    source: Option<ChartSource>,
    /// `valuesFromFile`, passed to Helm as they are, in order.
    values_files: Vec<PathBuf>,
    /// Access to a private chart repository or registry (`helm pull` flags).
    access: sources::RepositoryAccess,
    redactor: Redactor,
    /// The input read here, for the action's identity ([`ownership`]): the command, the
    /// release (as the release file and the manifest make it) and each `valuesFromFile` file.
    local_digest: action_runner::InputDigest,
}

/// The parts of Helm's release JSON (`helm install -o json`; `pkg/release` of `helm.sh/helm/v3`
/// and `pkg/release/v1` of `helm.sh/helm/v4`, the same fields in both) the runner reads. `config` holds the release's user-supplied values: never logged.
#[derive(Deserialize)]
struct HelmRelease {
    name: String,
    namespace: String,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    config: Option<Map<String, Value>>,
    chart: HelmChart,
}

#[derive(Deserialize)]
struct HelmChart {
    metadata: HelmChartMetadata,
}

#[derive(Deserialize)]
struct HelmChartMetadata {
    name: String,
    #[serde(default)]
    version: String,
}

/// `info.status` of `helm status -o json`.
#[derive(Deserialize)]
struct HelmStatus {
    info: HelmStatusInfo,
}

#[derive(Deserialize)]
struct HelmStatusInfo {
    status: String,
}

/// Checks that Helm's storage holds `release` as `deployed`. Helm (3 and 4) prints the release it
/// installed or upgraded even when it could not record the final state (it only warns, and the
/// stored revision stays `pending-install` or `pending-upgrade`, for example when the runner may
/// not `update` Secrets), so the runner reads the stored state back: for the `secret(s)` and
/// `configmap(s)` drivers from the record's `status` label with its own client (one GET,
/// [`storage::stored_status`]); for the others with `helm status`.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when the stored revision is not
/// `deployed`; errors of the GET as [`RunnerError::from_kube`] classifies them, or of `helm
/// status` as [`Helm::run`] does.
async fn verify_stored(
    helm: &Helm,
    client: &kube::Client,
    release: &HelmRelease,
) -> Result<(), RunnerError> {
    let status = if storage::reads_driver(&helm.driver) {
        storage::stored_status(
            client,
            &release.namespace,
            &helm.driver,
            &release.name,
            release.version,
        )
        .await?
        .unwrap_or_else(|| "missing".into())
    } else {
        let what = format!("helm status {}/{}", release.namespace, release.name);
        let mut argv: Vec<OsString> = vec!["status".into(), release.name.clone().into()];
        if let Some(kc) = &helm.kubeconfig {
            argv.extend(["--kubeconfig".into(), kc.clone().into()]);
        }
        argv.extend(["--namespace".into(), release.namespace.clone().into()]);
        argv.extend(["--revision".into(), release.version.to_string().into()]);
        argv.extend(["--output".into(), "json".into()]);
        let stdout = helm.run(&what, &argv).await?;
        let status: HelmStatus = serde_json::from_slice(&stdout).map_err(|e| {
            RunnerError::failed(format!("{what}: its JSON output could not be read")).because(e)
        })?;
        status.info.status
    };
    if status != "deployed" {
        return Err(RunnerError::failed(format!(
            "release {:?} in namespace {:?}: Helm reported success, but its storage holds \
             revision {} as {:?} (are the runner's rights on Helm's storage driver complete?)",
            release.name, release.namespace, release.version, status
        )));
    }
    Ok(())
}

/// Bound on reading why the wait failed ([`diagnose`]).
const DIAGNOSIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// Why helm's wait for the release of `record` (its latest revision) failed: one line and the
/// structured list (`notReady` of the status), redacted; `None` when everything is ready, the
/// record holds no manifest, or the reads take longer than [`DIAGNOSIS_TIMEOUT`].
async fn wait_diagnosis(
    client: &kube::Client,
    namespace: &str,
    record: &storage::Record,
    redactor: &Redactor,
) -> Option<(String, Value)> {
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
    let line = redactor.redact(&diagnose::describe(&not_ready, more));
    let list =
        redactor.redact_value(&serde_json::to_value(&not_ready).expect("the diagnosis serializes"));
    Some((line, list))
}

/// The end of a successful `helm uninstall`: what Helm's storage holds now (with
/// `keepHistory`, the latest revision `uninstalled`; else nothing), reported.
///
/// # Errors
/// The list of Helm's records, as [`storage::records`].
async fn uninstalled(
    p: &Prepared,
    op: &Operation,
    input: &WaitForCompletionInput,
) -> Result<WaitForCompletionOutput, RunnerError> {
    let name = p.release_name.clone().unwrap_or_default();
    let ns = &p.namespace;
    let command = Command::Uninstall;
    if input.ctx.dry_run {
        return Ok(WaitForCompletionOutput {
            succeeded: true,
            message: format!(
                "dry run: release {name:?} would be uninstalled from namespace {ns:?}; Helm \
                 simulated it and changed nothing"
            ),
            status: json!({
                "phase": phase(command, Stage::Done),
                "release": {"name": name, "namespace": ns},
                "helmVersion": op.version.text,
                "alreadyUninstalled": false,
            }),
        });
    }
    let latest = storage::records(&input.client, ns, &p.config.driver, &name)
        .await?
        .pop();
    let (message, release) = match &latest {
        Some(r) => (
            format!(
                "release {name:?} uninstalled successfully from namespace {ns:?} (history kept: \
                 revision {} recorded as {:?})",
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
    Ok(WaitForCompletionOutput {
        succeeded: true,
        message,
        status: json!({
            "phase": phase(command, Stage::Done),
            "release": release,
            "helmVersion": op.version.text,
            "alreadyUninstalled": false,
        }),
    })
}

/// The end of a successful `helm rollback` to revision `target`: the new revision is read from
/// Helm's storage and checked `deployed` (as [`verify_stored`] does for an install), and the
/// release file is rewritten for it (a dry run: for `target`, Helm stored nothing).
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when the stored revision is missing,
/// not `deployed`, or unreadable, or the release file cannot be written; the list of Helm's
/// records as [`storage::records`].
async fn rolled_back(
    p: &Prepared,
    op: &Operation,
    input: &WaitForCompletionInput,
    target: u64,
) -> Result<WaitForCompletionOutput, RunnerError> {
    let dry_run = input.ctx.dry_run;
    let name = p.release_name.clone().unwrap_or_default();
    let ns = &p.namespace;
    let history = storage::records(&input.client, ns, &p.config.driver, &name).await?;
    let record = if dry_run {
        history.iter().find(|r| r.revision == target)
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
            "{what}: helm rollback reported success, but Helm's storage holds revision {} as {:?} \
             (are the runner's rights on Helm's storage driver complete?)",
            record.revision, record.status
        )));
    }
    let release: HelmRelease = record
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
        })?;
    let message = if dry_run {
        format!("dry run: {what} would be rolled back to revision {target}; Helm stored nothing")
    } else {
        format!(
            "release {name:?} rolled back successfully to revision {target} in namespace {ns:?} \
             (revision {})",
            release.version
        )
    };
    tracing::info!(release = %name, namespace = %ns, target, revision = release.version,
        dry_run, "helm rollback done");
    let reference = ReleaseRef {
        name: release.name.clone(),
        namespace: release.namespace.clone(),
        driver: p.config.driver.clone(),
        chart_name: release.chart.metadata.name.clone(),
        chart_version: release.chart.metadata.version.clone(),
        chart_repo: p.chart.repo.clone(),
    };
    files::write_output(
        &p.config.release_output,
        "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
        &output::release_file(&reference, op.output.helm_release.use_helm_release_storage),
    )
    .map_err(|e| {
        RunnerError::failed(format!("{message}, but its outputs could not be produced")).because(e)
    })?;
    Ok(WaitForCompletionOutput {
        succeeded: true,
        message,
        status: json!({
            "phase": phase(Command::Rollback, Stage::Done),
            "release": {"name": name, "namespace": ns, "revision": release.version,
                "status": (!dry_run).then_some("deployed")},
            "targetRevision": target,
            "helmVersion": op.version.text,
        }),
    })
}

fn invalid(message: String) -> RunnerError {
    RunnerError::invalid_input(format!("input manifest: {message}"))
}

impl ActionRunner for HelmRunner {
    type Args = HelmInput;

    fn name(&self) -> &'static str {
        "helm"
    }

    fn prepare(&mut self, ctx: &ExecutionContext, args: &HelmInput) -> Result<(), RunnerError> {
        let config = HelmConfig::from_env()?;
        let mut redactor = Redactor::default();
        let mut local_digest = action_runner::InputDigest::new();
        local_digest.add("command", config.command.as_str().as_bytes());
        let (release_name, namespace, chart) = match config.command {
            Command::Install => {
                let name = match (args.name.trim(), args.generate_name) {
                    ("", false) => {
                        return Err(invalid(
                            "name is required for install (or set generateName: true)".into(),
                        ));
                    }
                    ("", true) => None,
                    (name, false) => {
                        input::validate_release_name(name)
                            .map_err(|e| invalid(format!("name {name:?} {e}")))?;
                        Some(name.to_string())
                    }
                    (name, true) => {
                        return Err(invalid(format!(
                            "name {name:?} and generateName: true are exclusive"
                        )));
                    }
                };
                (name, ctx.platform.namespace.clone(), args.chart.clone())
            }
            Command::Upgrade => {
                let path = config.release_path.clone().unwrap_or_default();
                let mut release = input::read_release_file(&path)?;
                for (field, value) in [
                    (&mut release.chart.name, &args.chart.name),
                    (&mut release.chart.repo, &args.chart.repo),
                    (&mut release.chart.version, &args.chart.version),
                ] {
                    if !value.trim().is_empty() {
                        *field = value.clone();
                    }
                }
                let json = serde_json::to_vec(&release).expect("a release serializes");
                local_digest.add("release", &json);
                (Some(release.name), release.namespace, release.chart)
            }
            Command::Uninstall | Command::Rollback => {
                let path = config.release_path.clone().unwrap_or_default();
                let release = input::read_release_file(&path)?;
                let name = args.name.trim();
                if !name.is_empty() && name != release.name {
                    return Err(invalid(format!(
                        "name {name:?} is not the release {:?} of the release file {} \
                         (RUNNER_HELM_RELEASE_PATH), which names the release to {}: leave name \
                         out or make them match",
                        release.name,
                        path.display(),
                        match config.command {
                            Command::Rollback => "roll back",
                            _ => "uninstall",
                        }
                    )));
                }
                (Some(release.name), release.namespace, release.chart)
            }
        };
        if let Some((field, applies)) = lifecycle::misplaced_field(config.command, args) {
            return Err(invalid(format!(
                "{field} applies to {applies} only, not to RUNNER_COMMAND={}",
                config.command.as_str()
            )));
        }
        lifecycle::timeout(args)?;
        let source = match config.command {
            Command::Install | Command::Upgrade => {
                Some(chart::resolve(&chart).map_err(|e| invalid(e.to_string()))?)
            }
            Command::Uninstall | Command::Rollback => None,
        };

        let access = match &source {
            Some(source) => {
                sources::check_credentials_transport(&args.chart, source)?;
                sources::RepositoryAccess::read(&args.chart, source)?
            }
            None => sources::RepositoryAccess::default(),
        };
        if let Some(password) = &access.password {
            redactor.add(password);
        }

        // Values layers (see `sources`): valuesFrom (read in `start`), files, inline.
        sources::check_values_from(&args.values_from)?;
        if let Some(v) = args.values.as_ref().filter(|v| !v.0.is_empty()) {
            redactor.add_values(&Value::Object(v.0.clone()));
        }
        let mut values_files = Vec::new();
        for (i, file) in args.values_from_file.iter().enumerate() {
            if file.trim().is_empty() {
                return Err(invalid(format!(
                    "valuesFromFile[{i}] is empty: name a file"
                )));
            }
            let file = PathBuf::from(file.trim());
            let v = input::read_values_file(&file)?;
            let json = serde_json::to_vec(&v).expect("values serialize");
            local_digest.add(&format!("valuesFromFile[{i}]"), &json);
            redactor.add_values(&Value::Object(v.0));
            values_files.push(file);
        }
        self.prepared = Some(Prepared {
            config,
            release_name,
            namespace,
            chart,
            source,
            values_files,
            access,
            redactor,
            local_digest,
        });
        Ok(())
    }

    async fn start(&mut self, input: StartInput<HelmInput>) -> Result<StartOutput, RunnerError> {
        let Some(p) = self.prepared.as_mut() else {
            return Err(RunnerError::invalid_input(
                "the Helm runner was started without prepare",
            ));
        };
        let command = p.config.command;
        let ctx = &input.ctx;
        let args = &input.args;
        // valuesFrom, read before anything is written (a missing source: exit 2, no status).
        input
            .activity
            .set(format!("reading valuesFrom in namespace {}", p.namespace));
        let fetched = sources::fetch_values(&input.client, &p.namespace, &args.values_from).await?;
        for f in &fetched {
            p.redactor.add_values(&Value::Object(f.values.0.clone()));
        }
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .filter(|k| !k.is_empty() && !k.to_string_lossy().contains(':'))
            .map(PathBuf::from);
        let mut helm = Helm {
            binary: p.config.helm_binary.clone(),
            driver: p.config.driver.clone(),
            repository_cache: p.config.repository_cache.clone(),
            kubeconfig,
            // The manifest's `timeout` for this operation, else `RUNNER_TIMEOUT`'s.
            timeout: lifecycle::timeout(args)?.or(ctx.timeout),
            config_env: Vec::new(),
            redactor: p.redactor.clone(),
        };
        input
            .activity
            .set(format!("reading the version of {}", helm.binary.display()));
        let version = helm.version().await?;
        tracing::info!(helm = %version, binary = %helm.binary.display(),
            server_side_apply_by_default = version.server_side_apply_by_default(), "helm version");

        // An upgrade may reuse (`--reuse-values`) or print back the values stored with the
        // release's earlier revisions, a rollback restores them: they are secrets too.
        let mut history = Vec::new();
        if let (true, Some(name)) = (command.needs_release_file(), &p.release_name) {
            input.activity.set(format!(
                "reading the history of release {name:?} in namespace {:?}",
                p.namespace
            ));
            history = storage::history(&input.client, &p.namespace, &p.config.driver, name).await?;
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
            p.redactor = helm.redactor.clone();
        }

        if let Command::Uninstall | Command::Rollback = command {
            let name = p.release_name.clone().unwrap_or_default();
            let (lifecycle, mut argv, mut status) = match command {
                Command::Uninstall => {
                    match lifecycle::uninstall_plan(&history, args.keep_history) {
                        lifecycle::UninstallPlan::Gone(why) => {
                            (Lifecycle::Uninstall(Some(why)), Vec::new(), json!({}))
                        }
                        lifecycle::UninstallPlan::Run => (
                            Lifecycle::Uninstall(None),
                            lifecycle::uninstall_args(&version, &name, args, ctx.dry_run),
                            json!({}),
                        ),
                    }
                }
                _ => {
                    let target = lifecycle::rollback_target(&history, args.revision).map_err(
                        |e| match e {
                            lifecycle::TargetError::NoRelease => {
                                RunnerError::invalid_input(format!(
                                    "release {name:?} in namespace {:?} (RUNNER_HELM_RELEASE_PATH): \
                                     {e}",
                                    p.namespace
                                ))
                            }
                            _ => invalid(format!(
                                "{e}: release {name:?} in namespace {:?}",
                                p.namespace
                            )),
                        },
                    )?;
                    (
                        Lifecycle::Rollback(target),
                        lifecycle::rollback_args(&version, &name, target, args, ctx.dry_run),
                        json!({"targetRevision": target}),
                    )
                }
            };
            argv.extend(helm.cluster_args(&p.namespace));
            status["phase"] = phase(command, Stage::Running).into();
            status["release"] = json!({"name": name, "namespace": p.namespace});
            status["helmVersion"] = version.text.clone().into();
            let scratch = tempfile::Builder::new()
                .prefix("helm-runner-")
                .tempdir()
                .map_err(|e| RunnerError::failed("cannot create a scratch directory").because(e))?;
            self.operation = Some(Operation {
                what: format!("helm {} {}/{name}", command.as_str(), p.namespace),
                helm,
                version,
                argv,
                child: None,
                scratch,
                chart_dir: PathBuf::new(),
                output: args.output.clone(),
                adopted: None,
                waits: command == Command::Rollback && args.wait && !ctx.dry_run,
                lifecycle: Some(lifecycle),
            });
            return Ok(StartOutput {
                status,
                ..StartOutput::default()
            });
        }

        // The chart, fetched before anything is written to the cluster (a recovery below marks
        // a revision failed): a chart refused as hostile or malformed is exit 2 with nothing
        // written. Its files are part of the action's identity.
        let scratch = tempfile::Builder::new()
            .prefix("helm-runner-")
            .tempdir()
            .map_err(|e| RunnerError::failed("cannot create a scratch directory").because(e))?;
        let source = p.source.as_ref().ok_or_else(|| {
            RunnerError::failed("no chart source was prepared for an install or upgrade")
        })?;
        input
            .activity
            .set(format!("fetching the chart: {}", source.describe()));
        // A private chart source: helm logs in to it first (the password on its stdin only).
        let pull = p
            .access
            .login(&helm, &version, source, scratch.path())
            .await?;
        let chart_dir = chart::fetch(&pull.helm, &pull.source, &pull.args, scratch.path()).await?;

        // The action's identity: its input as read, the chart's files included (`ownership`).
        let mut digest = input.digest.clone();
        digest.add("local", p.local_digest.finish().as_bytes());
        for f in &fetched {
            digest.add(&format!("valuesFrom[{}]", f.index), f.text.as_bytes());
        }
        ownership::add_chart(&mut digest, &chart_dir).map_err(|e| {
            RunnerError::invalid_input(format!("chart {}: cannot read its files", p.chart.name))
                .because(e)
        })?;

        // A retried attempt of this action: what the earlier ones left (see `ownership`).
        let id = ActionId::of(ctx, &digest);
        if id.is_none() {
            tracing::warn!(action = %ctx.name, "no owner uid and an action name longer than a \
                label value: the release is not labelled, and a retried attempt cannot tell it \
                from another action's");
        }
        input.activity.set(format!(
            "reading the history of the release in namespace {}",
            p.namespace
        ));
        let decision = match &id {
            Some(id) if storage::reads_driver(&p.config.driver) => {
                let history = match &p.release_name {
                    // Read above already (an upgrade).
                    Some(_) if command.needs_release_file() => history.clone(),
                    Some(name) => {
                        storage::history(&input.client, &p.namespace, &p.config.driver, name)
                            .await?
                    }
                    None => {
                        // A generated name: the release this action made, if any.
                        let mine = storage::records_matching(
                            &input.client,
                            &p.namespace,
                            &p.config.driver,
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
                ownership::decide(command, id, &history, args.replace)
            }
            _ => Decision::Run,
        };
        let mut replace = args.replace;
        let mut adopted = None;
        match decision {
            Decision::Run => {}
            Decision::NotOurs(r) => {
                return Err(RunnerError::invalid_input(format!(
                    "release {:?} in namespace {:?} already exists (revision {}, {}, made by {}) \
                     and this action did not install it: install under another name, or upgrade \
                     it",
                    r.release_name(),
                    p.namespace,
                    r.revision,
                    r.status,
                    ownership::maker(&r.labels),
                )));
            }
            Decision::OtherOwner(r, uid) => {
                return Err(RunnerError::invalid_input(format!(
                    "release {:?} in namespace {:?}: its revision {} was made by action {:?} of \
                     another owner (uid {uid}; this runner's owner is {}): two Jobs cannot be \
                     one action; give this one its own RUNNER_CONTEXT_NAME",
                    r.release_name(),
                    p.namespace,
                    r.revision,
                    ctx.name,
                    id.as_ref()
                        .map_or(ownership::NO_OWNER, |i| i.owner_uid.as_str()),
                )));
            }
            _ if ctx.dry_run => {}
            Decision::Adopt(r) => {
                tracing::info!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action made this revision: \
                    adopting it, no new revision");
                p.release_name = Some(r.release_name().to_string());
                adopted = Some(r);
            }
            Decision::Recover(r) => {
                tracing::warn!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action left the release \
                    pending and is gone: marking the revision failed, then going on");
                storage::mark_failed(
                    &input.client,
                    &p.namespace,
                    &p.config.driver,
                    &r,
                    &format!(
                        "Marked failed by helm-runner: the attempt of action {:?} that ran this \
                         operation ended before it",
                        ctx.name
                    ),
                )
                .await?;
                p.release_name = Some(r.release_name().to_string());
                replace = true;
            }
            Decision::Replace(r) => {
                tracing::info!(release = r.release_name(), revision = r.revision,
                    status = %r.status, "an earlier attempt of this action failed: going on");
                p.release_name = Some(r.release_name().to_string());
                replace = true;
            }
        }

        // The command line: never values (they go in 0600 files), layered in Helm's order:
        // valuesFrom, valuesFromFile, inline values last (see `sources`).
        let mut values_files = sources::write_values(scratch.path(), &fetched)?;
        values_files.extend(p.values_files.iter().cloned());
        if let Some(v) = args.values.as_ref().filter(|v| !v.0.is_empty()) {
            let path = scratch.path().join("values.json");
            files::write_private(&path, &serde_json::to_vec(&v.0).expect("values serialize"))?;
            values_files.push(path);
        }
        let mut argv = operation_args(
            &version,
            command,
            p.release_name.as_deref(),
            &chart_dir,
            &values_files,
            args,
            &Extra {
                dry_run: ctx.dry_run,
                replace,
                labels: id.as_ref().map(ActionId::labels_arg),
            },
        );
        argv.extend(helm.cluster_args(&p.namespace));
        let verb = command.as_str();
        let what = match &p.release_name {
            Some(n) => format!("helm {verb} {}/{n}", p.namespace),
            None => format!("helm {verb} (generated name) in namespace {}", p.namespace),
        };
        let status = json!({
            "phase": phase(command, Stage::Running),
            "release": {"name": p.release_name, "namespace": p.namespace},
            "helmVersion": version.text,
        });
        self.operation = Some(Operation {
            helm,
            version,
            argv,
            what,
            child: None,
            scratch,
            chart_dir,
            output: args.output.clone(),
            adopted,
            waits: (args.wait || args.rollback_on_failure) && !ctx.dry_run,
            lifecycle: None,
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
        let (Some(p), Some(op)) = (self.prepared.as_mut(), self.operation.as_mut()) else {
            return Err(RunnerError::failed(
                "the Helm operation did not run (start did not finish)",
            ));
        };
        let command = p.config.command;
        let ctx = &input.ctx;
        if let Some(Lifecycle::Uninstall(Some(why))) = &op.lifecycle {
            let name = p.release_name.clone().unwrap_or_default();
            let message = format!(
                "release {name:?} in namespace {:?} {why}: nothing to uninstall (an earlier \
                 attempt, or someone else, uninstalled it)",
                p.namespace
            );
            tracing::info!(release = %name, namespace = %p.namespace, "{message}");
            return Ok(WaitForCompletionOutput {
                succeeded: true,
                message,
                status: json!({
                    "phase": phase(command, Stage::Done),
                    "release": {"name": name, "namespace": p.namespace},
                    "helmVersion": op.version.text,
                    "alreadyUninstalled": true,
                }),
            });
        }
        let ran = if let Some(r) = &op.adopted {
            r.release_json().map_err(|e| {
                RunnerError::failed(format!(
                    "Helm's record {}/{} could not be read",
                    p.namespace, r.object
                ))
                .because(e)
            })
        } else {
            if op.child.is_none() {
                tracing::info!(command = command.as_str(),
                    release = p.release_name.as_deref().unwrap_or("<generated>"),
                    namespace = %p.namespace, dry_run = ctx.dry_run, helm = %op.version, "running helm");
                op.child = Some(op.helm.spawn(&op.what, &op.argv)?);
            }
            op.child.as_mut().expect("spawned above").wait().await
        };
        let stdout = match ran {
            Ok(stdout) => stdout,
            // Helm ran and failed: the action completed, unsuccessfully; what Helm stored is
            // reported with it. Errors of access (exit 3, 4) stay errors.
            Err(e) if e.kind() == action_runner::error::ErrorKind::Failed => {
                let stored = match &p.release_name {
                    Some(name) if !ctx.dry_run => {
                        storage::records(&input.client, &p.namespace, &p.config.driver, name)
                            .await
                            .ok()
                            .and_then(|r| r.into_iter().last())
                    }
                    _ => None,
                };
                let release = match &stored {
                    Some(r) => json!({"name": p.release_name, "namespace": p.namespace,
                        "revision": r.revision, "status": r.status}),
                    None => json!({"name": p.release_name, "namespace": p.namespace}),
                };
                let mut message = e.to_string();
                let mut status = json!({
                    "phase": phase(command, Stage::Failed),
                    "release": release,
                    "helmVersion": op.version.text,
                });
                let diagnosis = match (op.waits, &stored) {
                    (true, Some(r)) => {
                        wait_diagnosis(&input.client, &p.namespace, r, &op.helm.redactor).await
                    }
                    _ => None,
                };
                if let Some((line, not_ready)) = diagnosis {
                    message = format!("{message}; {line}");
                    status["notReady"] = not_ready;
                }
                return Ok(WaitForCompletionOutput {
                    succeeded: false,
                    message,
                    status,
                });
            }
            Err(e) => return Err(e),
        };
        match op.lifecycle {
            Some(Lifecycle::Uninstall(_)) => return uninstalled(p, op, &input).await,
            Some(Lifecycle::Rollback(target)) => {
                return rolled_back(p, op, &input, target).await;
            }
            None => {}
        }
        let helm = &mut op.helm;
        let what = &op.what;
        let verb = command.as_str();
        let release: HelmRelease = serde_json::from_slice(&stdout).map_err(|e| {
            RunnerError::failed(format!(
                "{what} succeeded but its JSON output could not be read"
            ))
            .because(e)
        })?;
        let config_values = Value::Object(release.config.clone().unwrap_or_default());
        helm.redactor.add_values(&config_values);
        p.redactor = helm.redactor.clone();
        let stored_status = if let Some(r) = &op.adopted {
            Some(r.status.as_str())
        } else if ctx.dry_run {
            None
        } else {
            verify_stored(helm, &input.client, &release).await?;
            Some("deployed")
        };

        let done_verb = match command {
            Command::Install => "installed",
            _ => "upgraded",
        };
        let done = if ctx.dry_run {
            format!(
                "dry run: release {:?} would be {done_verb} in namespace {:?} (revision {}); Helm \
                 validated it against the cluster and stored nothing",
                release.name, release.namespace, release.version
            )
        } else if op.adopted.is_some() {
            format!(
                "release {:?} {done_verb} successfully in namespace {:?} (revision {}, by an \
                 earlier attempt of this action; adopted, no new revision)",
                release.name, release.namespace, release.version
            )
        } else {
            format!(
                "release {:?} {done_verb} successfully in namespace {:?} (revision {})",
                release.name, release.namespace, release.version
            )
        };
        tracing::info!(release = %release.name, namespace = %release.namespace,
            revision = release.version, dry_run = ctx.dry_run, "helm {verb} done");

        // Outputs.
        let reference = ReleaseRef {
            name: release.name.clone(),
            namespace: release.namespace.clone(),
            driver: p.config.driver.clone(),
            chart_name: release.chart.metadata.name.clone(),
            chart_version: release.chart.metadata.version.clone(),
            chart_repo: p.chart.repo.clone(),
        };
        let failed_after = |e: RunnerError| {
            RunnerError::failed(format!("{done}, but its outputs could not be produced")).because(e)
        };
        let release_doc =
            output::release_file(&reference, op.output.helm_release.use_helm_release_storage);
        files::write_output(
            &p.config.release_output,
            "RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH",
            &release_doc,
        )
        .map_err(failed_after)?;
        if let Some(template) = op.output.go_template() {
            let doc = if op.output.additional.use_helm_template_storage {
                output::additional_storage_file(&reference, template)
            } else {
                let values_path = op.scratch.path().join("release-values.json");
                files::write_private(
                    &values_path,
                    &serde_json::to_vec(&config_values).expect("values serialize"),
                )
                .map_err(failed_after)?;
                let kube_version = input
                    .client
                    .apiserver_version()
                    .await
                    .ok()
                    .map(|v| v.git_version);
                let rendered = render::render(
                    helm,
                    &op.chart_dir,
                    &render::RenderRelease {
                        name: &release.name,
                        namespace: &release.namespace,
                        revision: release.version,
                        chart_name: &release.chart.metadata.name,
                        kube_version: kube_version.as_deref(),
                    },
                    template,
                    &values_path,
                )
                .await
                .map_err(failed_after)?;
                output::additional_value_file(&rendered).map_err(failed_after)?
            };
            files::write_output(
                &p.config.additional_output,
                "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
                &doc,
            )
            .map_err(failed_after)?;
        }

        Ok(WaitForCompletionOutput {
            succeeded: true,
            message: done,
            status: json!({
                "phase": phase(command, Stage::Done),
                "release": {"name": release.name, "namespace": release.namespace,
                    "revision": release.version, "status": stored_status},
                "helmVersion": op.version.text,
                "adopted": op.adopted.is_some(),
            }),
        })
    }

    /// Stops helm if it runs: SIGTERM, [`STOP_GRACE`] for Helm to record the release as
    /// `failed`, then SIGKILL; the note says how it stopped and what Helm stored.
    async fn cancel(
        &mut self,
        input: WaitForCompletionInput,
    ) -> Result<Option<String>, RunnerError> {
        let (Some(p), Some(op)) = (self.prepared.as_ref(), self.operation.as_mut()) else {
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
        let stored = match &p.release_name {
            Some(name) if !input.ctx.dry_run => {
                storage::records(&input.client, &p.namespace, &p.config.driver, name)
                    .await
                    .ok()
                    .and_then(|r| r.into_iter().last())
            }
            _ => None,
        };
        Ok(Some(match stored {
            Some(r) => {
                let mut note = format!(
                    "{how}; Helm stores revision {} of the release as {:?}",
                    r.revision, r.status
                );
                let diagnosis = if op.waits {
                    wait_diagnosis(&input.client, &p.namespace, &r, &op.helm.redactor).await
                } else {
                    None
                };
                if let Some((line, not_ready)) = diagnosis {
                    note = format!("{note}; {line}");
                    input
                        .progress
                        .set(serde_json::json!({ "notReady": not_ready }));
                }
                note
            }
            None => how,
        }))
    }

    fn cancel_timeout(&self) -> std::time::Duration {
        // The grace period, then the kill, one list of Helm's records, and the diagnosis of
        // the wait.
        STOP_GRACE + std::time::Duration::from_secs(3) + DIAGNOSIS_TIMEOUT
    }
}

/// What the run adds to the input's flags.
#[derive(Debug, Default)]
struct Extra {
    /// `RUNNER_CONTEXT_DRY_RUN`.
    dry_run: bool,
    /// Install with `--replace`: the input's `replace`, or a retried attempt taking over its
    /// predecessor's failed revision.
    replace: bool,
    /// The release labels naming the action (`--labels`), see [`ActionId::labels_arg`].
    labels: Option<String>,
}

/// The arguments of `helm install`/`helm upgrade` for helm `version`, without the cluster flags
/// ([`Helm::cluster_args`], which the caller appends): `<verb> <name>|--generate-name
/// <chart dir> --output json`, a `--values` per file, then `--no-hooks`, the wait flags of the
/// major version ([`HelmVersion::wait_args`]), its flag for `rollbackOnFailure`
/// ([`HelmVersion::rollback_on_failure_arg`]), `--dry-run=server`, `--labels`, and `--replace`,
/// `--create-namespace` (install) or `--history-max N`, `--reuse-values`, `--reset-values`
/// (upgrade), as the input and `extra` ask. Only for install and upgrade: uninstall and
/// rollback build theirs in [`lifecycle`].
fn operation_args(
    version: &HelmVersion,
    command: Command,
    release_name: Option<&str>,
    chart_dir: &Path,
    values_files: &[PathBuf],
    args: &HelmInput,
    extra: &Extra,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![command.as_str().into()];
    argv.push(release_name.unwrap_or("--generate-name").into());
    argv.push(chart_dir.into());
    argv.extend(["--output".into(), "json".into()]);
    for f in values_files {
        argv.extend(["--values".into(), f.into()]);
    }
    if args.no_hooks {
        argv.push("--no-hooks".into());
    }
    argv.extend(version.wait_args(args.wait).into_iter().map(OsString::from));
    if args.rollback_on_failure {
        argv.push(version.rollback_on_failure_arg().into());
    }
    if extra.dry_run {
        argv.push("--dry-run=server".into());
    }
    if let Some(labels) = &extra.labels {
        argv.extend(["--labels".into(), labels.into()]);
    }
    match command {
        Command::Install => {
            if extra.replace {
                argv.push("--replace".into());
            }
            if args.create_namespace {
                argv.push("--create-namespace".into());
            }
        }
        Command::Upgrade | Command::Uninstall | Command::Rollback => {
            argv.extend(["--history-max".into(), args.max_history.to_string().into()]);
            if args.reuse_values {
                argv.push("--reuse-values".into());
            }
            if args.reset_values {
                argv.push("--reset-values".into());
            }
        }
    }
    argv
}

/// Where a run is, for the `phase` of the runner status.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Running,
    Done,
    Failed,
}

/// `Installing`, `Installed`, `InstallFailed`; `Upgrading`, `Upgraded`, `UpgradeFailed`;
/// `Uninstalling`, `Uninstalled`, `UninstallFailed`; `RollingBack`, `RolledBack`,
/// `RollbackFailed`.
fn phase(command: Command, stage: Stage) -> &'static str {
    match (command, stage) {
        (Command::Uninstall, Stage::Running) => "Uninstalling",
        (Command::Uninstall, Stage::Done) => "Uninstalled",
        (Command::Uninstall, Stage::Failed) => "UninstallFailed",
        (Command::Rollback, Stage::Running) => "RollingBack",
        (Command::Rollback, Stage::Done) => "RolledBack",
        (Command::Rollback, Stage::Failed) => "RollbackFailed",
        (Command::Install, Stage::Running) => "Installing",
        (Command::Install, Stage::Done) => "Installed",
        (Command::Install, Stage::Failed) => "InstallFailed",
        (Command::Upgrade, Stage::Running) => "Upgrading",
        (Command::Upgrade, Stage::Done) => "Upgraded",
        (Command::Upgrade, Stage::Failed) => "UpgradeFailed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The same input gives each major version its own wait flag, and nothing else differs.
    #[test]
    fn operation_args_per_helm_version() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        let input: HelmInput =
            serde_json::from_value(json!({"name": "shop", "wait": true, "noHooks": true})).unwrap();
        let install = |v: &HelmVersion| {
            strings(&operation_args(
                v,
                Command::Install,
                Some("shop"),
                Path::new("/s/chart/webapp"),
                &[PathBuf::from("/s/values.json")],
                &input,
                &Extra::default(),
            ))
        };
        assert_eq!(
            install(&v4),
            [
                "install",
                "shop",
                "/s/chart/webapp",
                "--output",
                "json",
                "--values",
                "/s/values.json",
                "--no-hooks",
                "--wait=watcher"
            ]
        );
        assert_eq!(
            install(&v3),
            [
                "install",
                "shop",
                "/s/chart/webapp",
                "--output",
                "json",
                "--values",
                "/s/values.json",
                "--no-hooks",
                "--wait"
            ]
        );

        let input: HelmInput = serde_json::from_value(json!({
            "wait": false, "reuseValues": true, "resetValues": true, "maxHistory": 3
        }))
        .unwrap();
        for v in [&v3, &v4] {
            assert_eq!(
                strings(&operation_args(
                    v,
                    Command::Upgrade,
                    Some("shop"),
                    Path::new("/c"),
                    &[],
                    &input,
                    &Extra {
                        dry_run: true,
                        ..Extra::default()
                    },
                )),
                [
                    "upgrade",
                    "shop",
                    "/c",
                    "--output",
                    "json",
                    "--dry-run=server",
                    "--history-max",
                    "3",
                    "--reuse-values",
                    "--reset-values"
                ],
                "{v}"
            );
        }
        let generated: HelmInput =
            serde_json::from_value(json!({"generateName": true, "wait": false})).unwrap();
        assert_eq!(
            strings(&operation_args(
                &v4,
                Command::Install,
                None,
                Path::new("/c"),
                &[],
                &generated,
                &Extra::default(),
            ))[..2],
            ["install", "--generate-name"]
        );
        let extra = Extra {
            replace: true,
            labels: Some("kube-action-runners.io/owner-uid=u-1".into()),
            ..Extra::default()
        };
        let replaced = strings(&operation_args(
            &v4,
            Command::Install,
            Some("shop"),
            Path::new("/c"),
            &[],
            &generated,
            &extra,
        ));
        assert_eq!(
            replaced[5..],
            [
                "--labels",
                "kube-action-runners.io/owner-uid=u-1",
                "--replace"
            ]
        );
        // rollbackOnFailure: each major's flag; createNamespace: install only.
        let undo: HelmInput = serde_json::from_value(
            json!({"name": "shop", "wait": false, "rollbackOnFailure": true, "createNamespace": true}),
        )
        .unwrap();
        let args = |v: &HelmVersion, c: Command| {
            strings(&operation_args(
                v,
                c,
                Some("shop"),
                Path::new("/c"),
                &[],
                &undo,
                &Extra::default(),
            ))[5..]
                .to_vec()
        };
        assert_eq!(
            args(&v4, Command::Install),
            ["--rollback-on-failure", "--create-namespace"]
        );
        assert_eq!(
            args(&v3, Command::Install),
            ["--atomic", "--create-namespace"]
        );
        assert_eq!(
            args(&v3, Command::Upgrade),
            ["--atomic", "--history-max", "10"]
        );
        assert_eq!(
            args(&v4, Command::Upgrade),
            ["--rollback-on-failure", "--history-max", "10"]
        );
    }

    #[test]
    fn phases() {
        let all = [
            Command::Install,
            Command::Upgrade,
            Command::Uninstall,
            Command::Rollback,
        ];
        let names: Vec<[&str; 3]> = all
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
}
