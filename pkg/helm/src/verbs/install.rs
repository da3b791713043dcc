//! `RUNNER_COMMAND=install` and `RUNNER_COMMAND=upgrade`: `helm install` or `helm upgrade` of
//! a chart, then the release file and the additional output file. The two share their input
//! ([`ChartInput`]) and every step but which release they act on and a few flags.
//!
//! - **install** names the release with the manifest's `name` (or lets Helm generate one,
//!   `generateName`), in the platform namespace;
//! - **upgrade** upgrades the release the release file names (`RUNNER_HELM_RELEASE_PATH`), in
//!   its namespace (as Capact does); the manifest's `chart.name`, `chart.repo` and
//!   `chart.version`, when set, override the file's.
//!
//! The run, step by step: `prepare` resolves the chart source and reads the credential, CA and
//! values files; `start` reads `valuesFrom`, fetches the chart (exit 2 for a chart refused as
//! hostile or malformed, nothing written), settles what a retried attempt of the same action
//! does ([`crate::ownership`]: adopt its revision, recover a pending one, refuse another
//! action's release) and writes the values files; `wait_for_completion` runs helm, checks that
//! Helm stored the revision `deployed`, and writes the outputs. Statuses: `Installing` →
//! `Installed`/`InstallFailed`, `Upgrading` → `Upgraded`/`UpgradeFailed`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use action_runner::{
    ExecutionContext, InputDigest, RunnerError, StartInput, WaitForCompletionOutput,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    HelmRelease, Outcome, Plan, PrepareCx, Stage, StartCx, Target, Verb, WaitCx, hooks_and_wait,
    phase,
};
use crate::chart::{self, ChartSource};
use crate::cli::{Helm, Redactor};
use crate::config::{Command, HelmConfig};
use crate::files;
use crate::input::{self, Chart, OutputArgs, SourceKind, Values, ValuesSource};
use crate::manifest::HelmInput;
use crate::output::{self, ReleaseRef, ValuesView};
use crate::ownership::{self, ActionId};
use crate::preflight;
use crate::render;
use crate::sources::{self, FetchedValues, RepositoryAccess};
use crate::storage::{self, Record};
use crate::verbs::test::{self, TestInput};
use crate::version::HelmVersion;

/// The input manifest of `install` and `upgrade`. A field of another command is an input error
/// naming the commands it applies to ([`crate::manifest`]); so is `createNamespace` for an
/// upgrade ([`INSTALL_ONLY`]).
///
/// ```yaml
/// name: my-release            # install: the release name (or generateName: true)
/// generateName: false         # install: let Helm pick the name (helm install --generate-name)
/// replace: false              # install: reuse the name of a deleted release (--replace)
/// chart:
///   name: nginx
///   repo: https://charts.example.com
///   version: 1.2.3
///   auth: {usernameFile: /creds/username, passwordFile: /creds/password}  # basic auth
///   # auth.allowPlainHttp: true  # only to send them over plain HTTP (http://, plainHttp)
///   caFile: /certs/ca.crt     # CA bundle of an https repository or registry
///   passCredentials: false    # send the credentials to other hosts too (--pass-credentials)
///   plainHttp: false          # an oci:// registry over plain HTTP (--plain-http)
/// valuesFrom:                 # values layered in Helm's order: these first, in list order,
///   - {kind: ConfigMap, name: base}                       # key: values.yaml by default
///   - {kind: Secret, name: creds, key: prod.yaml, optional: true}
/// valuesFromFile: [/path/a.yaml, /path/b.yaml]  # then these (or one path), in list order,
/// values: {replicaCount: 2}   # then the inline values, last: they win
/// noHooks: false              # --no-hooks
/// reuseValues: false          # upgrade: --reuse-values
/// resetValues: false          # upgrade: --reset-values
/// maxHistory: 10              # upgrade: --history-max (0: unlimited)
/// wait: true                  # --wait
/// timeout: 5m                 # --timeout, a Go duration (default: RUNNER_TIMEOUT, else Helm's 5m)
/// rollbackOnFailure: false    # --rollback-on-failure (Helm 4), --atomic (Helm 3)
/// serverSide: true            # Helm 4: --server-side=true|false (unset: Helm's default)
/// forceConflicts: false       # Helm 4: --force-conflicts
/// takeOwnership: false        # --take-ownership (Helm 4, Helm 3.17+)
/// createNamespace: false      # install: --create-namespace (needs namespaces: create)
/// output:
///   helmRelease: {useHelmReleaseStorage: false}
///   additional: {useHelmTemplateStorage: false, goTemplate: "host: {{ .Values.host }}"}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChartInput {
    /// Release name (install; an upgrade ignores it). Helm's release-name rules apply.
    #[serde(default)]
    pub name: String,
    /// Let Helm generate the release name (install, `--generate-name`; an upgrade ignores it).
    #[serde(default)]
    pub generate_name: bool,
    /// Re-use the name of a deleted release whose history is kept (install, `--replace`; an
    /// upgrade ignores it).
    #[serde(default)]
    pub replace: bool,
    /// The chart; for an upgrade, non-empty `name`, `repo` and `version` override the release
    /// file's chart.
    #[serde(default)]
    pub chart: Chart,
    /// Inline values (a mapping). Never logged. Layered last: they override every other
    /// source (see [`ValuesSource`] for the order).
    #[serde(default)]
    pub values: Option<Values>,
    /// Values files (YAML mappings) on the runner's file system: one path or a list, each passed
    /// to Helm as `--values` in list order, after `valuesFrom` and before `values`.
    #[serde(default, deserialize_with = "input::one_or_many")]
    pub values_from_file: Vec<String>,
    /// Values from ConfigMaps and Secrets in the release's namespace, read through the
    /// Kubernetes API when the run starts; layered first, in list order.
    #[serde(default)]
    pub values_from: Vec<ValuesSource>,
    /// `--no-hooks`: skip the chart's hooks.
    #[serde(default)]
    pub no_hooks: bool,
    /// Upgrade: `--reuse-values` (merge the new values into the release's last values); an
    /// install ignores it.
    #[serde(default)]
    pub reuse_values: bool,
    /// Upgrade: `--reset-values` (start from the chart's values; Helm gives it precedence over
    /// `reuseValues`); an install ignores it.
    #[serde(default)]
    pub reset_values: bool,
    /// Upgrade: `--history-max`, revisions kept per release; 0 keeps all. Default 10. An
    /// install ignores it.
    #[serde(default = "input::default_max_history")]
    pub max_history: u32,
    /// `--wait`: wait until the release's workloads are ready. Default `true`.
    #[serde(default = "input::default_true")]
    pub wait: bool,
    /// `--timeout` of this operation: a Go duration (`time.ParseDuration`: `90s`, `5m`,
    /// `1h30m`), positive. Empty: `RUNNER_TIMEOUT`, else Helm's default (5m). Helm applies it
    /// to each wait (hooks, `--wait`); `RUNNER_TIMEOUT` still bounds the whole run.
    #[serde(default)]
    pub timeout: String,
    /// Undo a failed operation (Helm 4 `--rollback-on-failure`, Helm 3 `--atomic`): a failed
    /// install is uninstalled, a failed upgrade rolled back. Helm then waits for the release
    /// even with `wait: false`.
    #[serde(default)]
    pub rollback_on_failure: bool,
    /// Helm 4 only: `--server-side`, apply the release's objects with server-side apply
    /// (`true`) or client-side (`false`). Unset: Helm 4's default (an install applies
    /// server-side; an upgrade keeps the method of the release's last revision, `auto`).
    /// Refused under Helm 3, which has no server-side apply (exit 2).
    #[serde(default)]
    pub server_side: Option<bool>,
    /// Helm 4 only: `--force-conflicts`, server-side apply takes over the fields other field
    /// managers own (a `kubectl edit`, another controller) instead of failing on the conflict.
    /// Refused with `serverSide: false` and under Helm 3 (exit 2).
    #[serde(default)]
    pub force_conflicts: bool,
    /// `--take-ownership` (Helm 4, Helm 3.17 and later): adopt objects that exist without
    /// Helm's ownership annotations, or with another release's, instead of failing on them.
    #[serde(default)]
    pub take_ownership: bool,
    /// Install only: `--create-namespace`, create the release's namespace if it does not exist.
    /// Opt-in: the runner's Role then needs `create` on `namespaces` (cluster-scoped: a
    /// ClusterRole).
    #[serde(default)]
    pub create_namespace: bool,
    /// `helm test` after a successful install or upgrade ([`TestInput`]): off by default.
    #[serde(default)]
    pub test: TestInput,
    /// What the output files hold.
    #[serde(default)]
    pub output: OutputArgs,
}

impl ChartInput {
    /// The inline values, when there are any.
    fn inline_values(&self) -> Option<&Values> {
        self.values.as_ref().filter(|v| !v.0.is_empty())
    }
}

/// The fields of [`ChartInput`] an upgrade refuses: the namespace of the release it upgrades
/// exists.
pub const INSTALL_ONLY: &[&str] = &["createNamespace"];

/// The fields of [`ChartInput`] `command` accepts only to ignore them, so that install and
/// upgrade can share a manifest (as they always could): an install ignores the upgrade's
/// `reuseValues`, `resetValues` and `maxHistory`, an upgrade the install's `name`,
/// `generateName` and `replace`. [`crate::manifest`] says a field applies to the command that
/// uses it.
pub fn ignored_by(command: Command) -> &'static [&'static str] {
    match command {
        Command::Install => &["reuseValues", "resetValues", "maxHistory"],
        Command::Upgrade => &["name", "generateName", "replace"],
        Command::Uninstall | Command::Rollback => &[],
    }
}

/// An install or an upgrade, from `prepare` to its outcome.
#[derive(Debug)]
pub(crate) struct ChartVerb {
    /// [`Command::Install`] or [`Command::Upgrade`].
    command: Command,
    input: ChartInput,
    /// The chart: the input's (install), or the release file's with the input's overrides.
    chart: Chart,
    source: ChartSource,
    /// Access to a private chart repository or registry (`helm pull` flags).
    access: RepositoryAccess,
    /// `valuesFromFile`, checked, in order.
    values_files: Vec<PathBuf>,
    /// The input `prepare` read, for the action's identity ([`ownership`]): the command, the
    /// release (as the release file and the manifest make it) and each `valuesFromFile` file.
    local_digest: InputDigest,
    /// `valuesFrom`, as `read_sources` read it.
    fetched: Vec<FetchedValues>,
    /// Set by `plan`: the chart and the values files, for helm.
    files: Option<RunFiles>,
    /// Set by `plan`: what the run adds to the input's flags (but `dry_run`, which `args` is
    /// given).
    extra: Extra,
    /// Set by `plan`: the revision an earlier attempt of this action made, which this attempt
    /// reports instead of running helm ([`ownership::Decision::Adopt`]).
    adopted: Option<Record>,
    /// Set by `plan`: the release-size preflight's figures for the status
    /// (`{bytes, limit, percent, warning}`), when it ran.
    size: Option<Value>,
    /// `chart.keyring`'s content, read by `prepare`, with `chart.verify`.
    keyring: Option<Vec<u8>>,
}

/// What helm reads while it runs, in the run's private scratch directory.
#[derive(Debug)]
struct RunFiles {
    /// Holds the chart and the values files while helm runs; deleted with it.
    scratch: tempfile::TempDir,
    /// The unpacked chart.
    chart_dir: PathBuf,
    /// The `--values` files, in Helm's order.
    values: Vec<PathBuf>,
}

impl Verb for ChartVerb {
    type Input = ChartInput;

    fn prepare(cx: PrepareCx<'_>, input: &ChartInput) -> Result<(Self, Target), RunnerError> {
        let PrepareCx {
            ctx,
            config,
            redactor,
        } = cx;
        let command = config.command;
        let mut local_digest = InputDigest::new();
        local_digest.add("command", command.as_str().as_bytes());
        let (target, chart) = match command {
            Command::Install => (install_target(ctx, input)?, input.chart.clone()),
            _ => upgrade_target(config, input, &mut local_digest)?,
        };
        input::timeout(&input.timeout)?;
        input::timeout(&input.test.timeout).map_err(|e| {
            RunnerError::invalid_input(format!("test.timeout {:?}", input.test.timeout)).because(e)
        })?;
        if input.force_conflicts && input.server_side == Some(false) {
            return Err(RunnerError::invalid_input(
                "forceConflicts: true needs server-side apply, and serverSide is false: \
                 remove one of them",
            ));
        }
        let source = chart::resolve(&chart).map_err(input::invalid)?;
        sources::check_credentials_transport(&input.chart, &source)?;
        let access = RepositoryAccess::read(&input.chart, &source)?;
        if let Some(password) = &access.password {
            redactor.add(password);
        }
        // Values layers (see `sources`): valuesFrom (read in `read_sources`), files, inline.
        sources::check_values_from(&input.values_from)?;
        if let Some(v) = input.inline_values() {
            redactor.add_values(&Value::Object(v.0.clone()));
        }
        let values_files = read_values_files(input, &mut local_digest, redactor)?;
        let keyring = read_keyring(&input.chart, &source)?;
        let verb = ChartVerb {
            command,
            input: input.clone(),
            chart,
            source,
            access,
            values_files,
            local_digest,
            fetched: Vec::new(),
            files: None,
            extra: Extra::default(),
            adopted: None,
            size: None,
            keyring,
        };
        Ok((verb, target))
    }

    async fn plan(&mut self, cx: StartCx<'_>, history: Vec<Record>) -> Result<Plan, RunnerError> {
        apply_options_for(&self.input, cx.version)?;
        let input = cx.input;
        // The chart, fetched before anything is written to the cluster (a recovery below marks
        // a revision failed): a chart refused as hostile or malformed is exit 2 with nothing
        // written. Its files are part of the action's identity.
        let scratch = tempfile::Builder::new()
            .prefix("helm-runner-")
            .tempdir()
            .map_err(|e| RunnerError::failed("cannot create a scratch directory").because(e))?;
        input
            .activity
            .set(format!("fetching the chart: {}", self.source.describe()));
        let chart_dir = self
            .fetch_chart(cx.helm, cx.version, input, scratch.path())
            .await?;
        let id = self.identity(input, &chart_dir)?;

        // A retried attempt of this action: what the earlier ones left (see `ownership`).
        input.activity.set(format!(
            "reading the history of the release in namespace {}",
            cx.target.namespace
        ));
        let check = ownership::Check {
            client: &input.client,
            ctx: &input.ctx,
            driver: &cx.config.driver,
            namespace: &cx.target.namespace,
        };
        let decision = match &id {
            Some(id) => {
                let name = cx.target.name.as_deref();
                check
                    .decide(self.command, id, name, &history, self.input.replace)
                    .await?
            }
            None => ownership::Decision::Run,
        };
        let attempt = check
            .settle(
                decision,
                id.as_ref(),
                &mut cx.target.name,
                self.input.replace,
            )
            .await?;

        // The command line: never values (they go in 0600 files), layered in Helm's order:
        // valuesFrom, valuesFromFile, inline values last (see `sources`).
        let values = self.write_values(scratch.path())?;
        self.files = Some(RunFiles {
            scratch,
            chart_dir,
            values,
        });
        self.extra = Extra {
            dry_run: false,
            replace: attempt.replace,
            labels: id.as_ref().map(ActionId::labels_arg),
        };
        self.adopted = attempt.adopted.clone();
        if self.adopted.is_none() && !input.ctx.dry_run {
            self.size = self
                .preflight(cx.helm, cx.version, cx.target, cx.config, input)
                .await?;
        }
        Ok(attempt.adopted.map_or(Plan::Run, Plan::Adopt))
    }

    fn status(&self) -> Map<String, Value> {
        let mut status = Map::new();
        if let Some(size) = &self.size {
            status.insert("releaseSize".into(), size.clone());
        }
        status
    }

    fn args(&self, target: &Target, version: &HelmVersion, dry_run: bool) -> Vec<OsString> {
        let files = self.files.as_ref().expect("args come after plan");
        let extra = Extra {
            dry_run,
            ..self.extra.clone()
        };
        let name = target.name.as_deref();
        let (chart, values) = (&files.chart_dir, &files.values);
        chart_args(
            version,
            self.command,
            name,
            chart,
            values,
            &self.input,
            &extra,
        )
    }

    fn waits(&self, dry_run: bool) -> bool {
        (self.input.wait || self.input.rollback_on_failure) && !dry_run
    }

    async fn outcome(&mut self, cx: WaitCx<'_>, stdout: Option<Vec<u8>>) -> Outcome {
        let dry_run = cx.input.ctx.dry_run;
        let release: HelmRelease =
            serde_json::from_slice(&stdout.unwrap_or_default()).map_err(|e| {
                RunnerError::failed(format!(
                    "{} succeeded but its JSON output could not be read",
                    super::what(self.command, cx.target)
                ))
                .because(e)
            })?;
        let config_values = Value::Object(release.config.clone().unwrap_or_default());
        cx.helm.redactor.add_values(&config_values);
        let stored_status = if let Some(r) = &self.adopted {
            Some(r.status.as_str())
        } else if dry_run {
            None
        } else {
            verify_stored(cx.helm, &cx.input.client, &release).await?;
            Some("deployed")
        };
        let done = self.done_message(&release, dry_run);
        tracing::info!(release = %release.name, namespace = %release.namespace,
            revision = release.version, dry_run, "helm {} done", self.command.as_str());
        let view = self.values_view(&config_values);
        // The chart's tests, once the release is stored as deployed.
        let tests = if self.input.test.enable && !dry_run {
            Some(self.run_tests(&cx, &release).await?)
        } else {
            None
        };
        let status = self.final_status(&cx, &release, stored_status, &view, tests.as_ref());
        if let Some(t) = tests
            .as_ref()
            .filter(|t| !t.passed && !self.input.test.ignore_failures)
        {
            // The release stays deployed; the action failed by its tests, and writes no outputs.
            return Ok(WaitForCompletionOutput {
                succeeded: false,
                message: format!("{done}, but its tests failed: {}", t.summary),
                status,
            });
        }
        let done = match &tests {
            Some(t) => format!("{done}; {}", t.summary),
            None => done,
        };
        self.write_outputs(&cx, &release, &config_values, &view)
            .await
            .map_err(|e| {
                RunnerError::failed(format!("{done}, but its outputs could not be produced"))
                    .because(e)
            })?;
        Ok(WaitForCompletionOutput {
            succeeded: true,
            message: done,
            status,
        })
    }
}

impl ChartVerb {
    /// `valuesFrom`, read from the release's namespace (`target`) before helm is asked anything
    /// and before anything is written (a missing source: exit 2, no status); their values go
    /// to `redactor`.
    ///
    /// # Errors
    /// As [`sources::fetch_values`].
    pub(crate) async fn read_sources(
        &mut self,
        input: &StartInput<HelmInput>,
        target: &Target,
        redactor: &mut Redactor,
    ) -> Result<(), RunnerError> {
        let ns = &target.namespace;
        input
            .activity
            .set(format!("reading valuesFrom in namespace {ns}"));
        self.fetched = sources::fetch_values(&input.client, ns, &self.input.values_from).await?;
        for f in &self.fetched {
            redactor.add_values(&Value::Object(f.values.0.clone()));
        }
        if self.access.from_cluster.is_some() {
            input.activity.set(format!(
                "reading the chart source's credentials in namespace {ns}"
            ));
            sources::read_cluster_credentials(&input.client, ns, &mut self.access, &self.source)
                .await?;
            if let Some(password) = &self.access.password {
                redactor.add(password);
            }
        }
        Ok(())
    }

    /// The action's identity: its input as read, the chart's files included (`ownership`);
    /// `None` when it cannot be a label (then logged: the run is not retry-safe).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the chart when its
    /// files cannot be read.
    fn identity(
        &self,
        input: &StartInput<HelmInput>,
        chart_dir: &Path,
    ) -> Result<Option<ActionId>, RunnerError> {
        let mut digest = input.digest.clone();
        digest.add("local", self.local_digest.finish().as_bytes());
        for f in &self.fetched {
            digest.add(&format!("valuesFrom[{}]", f.index), f.text.as_bytes());
        }
        ownership::add_chart(&mut digest, chart_dir).map_err(|e| {
            RunnerError::invalid_input(format!("chart {}: cannot read its files", self.chart.name))
                .because(e)
        })?;
        let id = ActionId::of(&input.ctx, &digest);
        if id.is_none() {
            tracing::warn!(action = %input.ctx.name, "no owner uid and an action name longer \
                than a label value: the release is not labelled, and a retried attempt cannot \
                tell it from another action's");
        }
        Ok(id)
    }

    /// `helm test` on the release just stored ([`test::run`]), its progress said first.
    ///
    /// # Errors
    /// As [`test::run`].
    async fn run_tests(
        &self,
        cx: &WaitCx<'_>,
        release: &HelmRelease,
    ) -> Result<test::TestOutcome, RunnerError> {
        cx.input
            .progress
            .set(json!({"phase": phase(self.command, Stage::Running), "testing": true}));
        let t = test::run(
            cx.helm,
            &cx.input.client,
            &cx.config.driver,
            &release.name,
            &release.namespace,
            &self.input.test,
        )
        .await?;
        tracing::info!(release = %release.name, passed = t.passed, "{}", t.summary);
        Ok(t)
    }

    /// The final status of a run whose helm succeeded: the release (its revision, its stored
    /// status, its values' digest and, on request, preview), helm's version, whether an
    /// earlier attempt's revision was adopted, and, when they were taken, the release-size
    /// figures and the tests' outcome.
    fn final_status(
        &self,
        cx: &WaitCx<'_>,
        release: &HelmRelease,
        stored_status: Option<&str>,
        view: &ValuesView,
        tests: Option<&test::TestOutcome>,
    ) -> Value {
        let mut status = json!({
            "phase": phase(self.command, Stage::Done),
            "release": {"name": release.name, "namespace": release.namespace,
                "revision": release.version, "status": stored_status,
                "valuesDigest": view.digest},
            "helmVersion": cx.version.text,
            "adopted": self.adopted.is_some(),
        });
        // What only some runs have, only when they have it.
        if let Some(preview) = &view.preview {
            status["release"]["valuesPreview"] = preview.clone();
        }
        if let Some(size) = &self.size {
            status["releaseSize"] = size.clone();
        }
        if let Some(t) = tests {
            status["tests"] = t.to_json();
        }
        status
    }

    /// Fetches the chart into `scratch` (`chart::fetch`): after a login to a private source
    /// (the password on helm's stdin only) and, with `chart.verify`, with its signature checked
    /// against the keyring (`helm verify` for a local archive, `helm pull --verify` for a
    /// remote chart). Returns the unpacked chart's directory.
    ///
    /// # Errors
    /// The login's and the fetch's; a failed signature check is an input error naming
    /// `chart.verify`.
    async fn fetch_chart(
        &self,
        helm: &Helm,
        version: &HelmVersion,
        input: &StartInput<HelmInput>,
        scratch: &Path,
    ) -> Result<PathBuf, RunnerError> {
        // A private chart source: helm logs in to it first (the password on its stdin only).
        let pull = self
            .access
            .login(helm, version, &self.source, scratch)
            .await?;
        let mut pull_args = pull.args.clone();
        if let Some(keyring) = &self.keyring {
            let path = scratch.join("keyring.gpg");
            files::write_private(&path, keyring)?;
            input.activity.set(format!(
                "checking the chart's signature: {}",
                self.source.describe()
            ));
            match &pull.source {
                // A local archive: `helm verify` reads it and its `.prov` beside it.
                ChartSource::Local(archive) => {
                    let argv: Vec<OsString> = vec![
                        "verify".into(),
                        archive.clone().into(),
                        "--keyring".into(),
                        path.into(),
                    ];
                    pull.helm
                        .run("helm verify", &argv)
                        .await
                        .map_err(signature_failed)?;
                }
                ChartSource::Remote { .. } => {
                    pull_args.extend(["--verify".into(), "--keyring".into(), path.into()]);
                }
            }
        }
        chart::fetch(&pull.helm, &pull.source, &pull_args, scratch)
            .await
            .map_err(|e| match &self.keyring {
                Some(_) if looks_like_a_signature_failure(&e.to_string()) => signature_failed(e),
                _ => e,
            })
    }

    /// The release-size preflight ([`preflight`]): a server-side dry run of this very command
    /// (the same arguments, `--dry-run=server`), and the record Helm would store measured
    /// against the limit of the storage driver. Over the limit: exit 2 before helm writes
    /// anything, naming the size, the limit and the largest parts; from
    /// [`preflight::WARN_AT_PERCENT`] on: a warning in the log and the status. Skipped (a
    /// warning in the log) when the dry run fails: the run itself then fails the same way and
    /// reports it; skipped for drivers without a bound (`sql`, `memory`).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) when the record would be
    /// over the limit.
    async fn preflight(
        &self,
        helm: &mut Helm,
        version: &HelmVersion,
        target: &Target,
        config: &HelmConfig,
        input: &StartInput<HelmInput>,
    ) -> Result<Option<Value>, RunnerError> {
        let Some(limit) = preflight::limit_for(&config.driver) else {
            return Ok(None);
        };
        input
            .activity
            .set("measuring the release record Helm will store (a server-side dry run)");
        let mut argv = self.args(target, version, true);
        argv.extend(helm.cluster_args(&target.namespace));
        let what = super::what(self.command, target);
        let measured = match helm.run(&format!("{what} (dry run)"), &argv).await {
            Ok(json) => preflight::measure(&json).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let size = match measured {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(error = %e, "the release-size preflight could not measure the \
                    release (its dry run failed); helm runs without it");
                return Ok(None);
            }
        };
        let object = if config.driver.starts_with("configmap") {
            "ConfigMap"
        } else {
            "Secret"
        };
        let percent = size.percent_of(limit);
        let sentence = format!(
            "the release record Helm would store for {what} is {} ({} bytes), {percent}% of the \
             {} a {object} holds (RUNNER_HELM_DRIVER {}); its largest parts: {}",
            preflight::human(size.bytes),
            size.bytes,
            preflight::human(limit),
            if config.driver.is_empty() {
                "secret"
            } else {
                &config.driver
            },
            size.describe_contributors()
        );
        if size.bytes > limit {
            return Err(RunnerError::invalid_input(format!(
                "{sentence}: over the limit, Helm would fail to store it after applying the \
                 release's objects; make the chart's files or values smaller, or use the sql \
                 driver"
            )));
        }
        let mut status = json!({"bytes": size.bytes, "limit": limit, "percent": percent});
        if percent >= preflight::WARN_AT_PERCENT {
            tracing::warn!(bytes = size.bytes, limit, percent, "{sentence}");
            status["warning"] = json!(sentence);
        } else {
            tracing::info!(bytes = size.bytes, limit, percent, "release record size");
        }
        Ok(Some(status))
    }

    /// The digest of the release's values (`config_values`, what Helm stored as its `config`)
    /// and, with `output.helmRelease.valuesPreview`, their preview: masked at every path a
    /// `valuesFrom` Secret supplied, and wherever a Secret's value or the chart source's
    /// password appears ([`crate::values`]).
    fn values_view(&self, config_values: &Value) -> ValuesView {
        let digest = crate::values::digest(config_values);
        if !self.input.output.helm_release.values_preview {
            return ValuesView {
                digest,
                preview: None,
            };
        }
        let mut from_secrets = std::collections::BTreeSet::new();
        let mut secrets: Vec<String> = self.access.password.iter().cloned().collect();
        for f in &self.fetched {
            let secret = self
                .input
                .values_from
                .get(f.index)
                .is_some_and(|s| s.kind == SourceKind::Secret);
            if secret {
                let layer = Value::Object(f.values.0.clone());
                for path in crate::values::leaf_paths(&layer) {
                    if let Some(Value::String(s)) = path.iter().try_fold(&layer, |v, k| {
                        v.get(k.as_str())
                            .or_else(|| v.get(k.parse::<usize>().ok()?))
                    }) {
                        secrets.push(s.clone());
                    }
                    from_secrets.insert(path);
                }
            }
        }
        ValuesView {
            digest,
            preview: Some(crate::values::preview(
                config_values,
                &from_secrets,
                &secrets,
            )),
        }
    }

    /// Writes the values layers to `dir` (mode 0600) and returns every `--values` file in
    /// Helm's order: each `valuesFrom` entry, each `valuesFromFile` file, the inline values.
    ///
    /// # Errors
    /// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when a file cannot be written.
    fn write_values(&self, dir: &Path) -> Result<Vec<PathBuf>, RunnerError> {
        let mut values = sources::write_values(dir, &self.fetched)?;
        values.extend(self.values_files.iter().cloned());
        if let Some(v) = self.input.inline_values() {
            let path = dir.join("values.json");
            let json = serde_json::to_vec(&v.0).expect("values serialize");
            files::write_private(&path, &json)?;
            values.push(path);
        }
        Ok(values)
    }

    /// The message of a successful run.
    fn done_message(&self, release: &HelmRelease, dry_run: bool) -> String {
        let done = match self.command {
            Command::Install => "installed",
            _ => "upgraded",
        };
        let (name, ns, revision) = (&release.name, &release.namespace, release.version);
        if dry_run {
            format!(
                "dry run: release {name:?} would be {done} in namespace {ns:?} (revision \
                 {revision}); Helm validated it against the cluster and stored nothing"
            )
        } else if self.adopted.is_some() {
            format!(
                "release {name:?} {done} successfully in namespace {ns:?} (revision {revision}, \
                 by an earlier attempt of this action; adopted, no new revision)"
            )
        } else {
            format!(
                "release {name:?} {done} successfully in namespace {ns:?} (revision {revision})"
            )
        }
    }

    /// Writes the release file and, with a Go template, the additional file.
    ///
    /// # Errors
    /// [`ErrorKind::Failed`](action_runner::error::ErrorKind) when a file cannot be written or
    /// the template does not render.
    async fn write_outputs(
        &self,
        cx: &WaitCx<'_>,
        release: &HelmRelease,
        config_values: &Value,
        view: &ValuesView,
    ) -> Result<(), RunnerError> {
        let output = &self.input.output;
        let mut reference = super::release_ref(cx.config, release, &self.chart.repo);
        reference.values = Some(view.clone());
        let storage = output.helm_release.use_helm_release_storage;
        super::write_release_file(cx.config, &reference, storage)?;
        let Some(template) = output.go_template() else {
            return Ok(());
        };
        let doc = if output.additional.use_helm_template_storage {
            output::additional_storage_file(&reference, template)
        } else {
            let rendered = self
                .render(cx, &reference, release.version, config_values, template)
                .await?;
            output::additional_value_file(&rendered)?
        };
        files::write_output(
            &cx.config.additional_output,
            "RUNNER_OUTPUT_ADDITIONAL_FILE_PATH",
            &doc,
        )
    }

    /// `template` rendered like a template file of the chart, against the release of
    /// `reference` at `revision` and its user-supplied values (`config_values`).
    ///
    /// # Errors
    /// As [`render::render`], or when the values file cannot be written.
    async fn render(
        &self,
        cx: &WaitCx<'_>,
        reference: &ReleaseRef,
        revision: u64,
        config_values: &Value,
        template: &str,
    ) -> Result<String, RunnerError> {
        let files = self.files.as_ref().expect("the outcome comes after plan");
        let values_path = files.scratch.path().join("release-values.json");
        let json = serde_json::to_vec(config_values).expect("values serialize");
        files::write_private(&values_path, &json)?;
        let kube_version = cx
            .input
            .client
            .apiserver_version()
            .await
            .ok()
            .map(|v| v.git_version);
        let release = render::RenderRelease {
            name: &reference.name,
            namespace: &reference.namespace,
            revision,
            chart_name: &reference.chart_name,
            kube_version: kube_version.as_deref(),
        };
        render::render(cx.helm, &files.chart_dir, &release, template, &values_path).await
    }
}

/// The release an install names: the manifest's `name` in the platform namespace, or none with
/// `generateName`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) when neither or both are given,
/// or `name` breaks Helm's release-name rule.
fn install_target(ctx: &ExecutionContext, input: &ChartInput) -> Result<Target, RunnerError> {
    let name = match (input.name.trim(), input.generate_name) {
        ("", false) => {
            return Err(input::invalid(
                "name is required for install (or set generateName: true)",
            ));
        }
        ("", true) => None,
        (name, false) => {
            input::validate_release_name(name)
                .map_err(|e| input::invalid(format!("name {name:?} {e}")))?;
            Some(name.to_string())
        }
        (name, true) => {
            return Err(input::invalid(format!(
                "name {name:?} and generateName: true are exclusive"
            )));
        }
    };
    Ok(Target {
        name,
        namespace: ctx.platform.namespace.clone(),
    })
}

/// The release an upgrade acts on, and its chart: the release file's, with the manifest's
/// non-empty `chart.name`, `chart.repo` and `chart.version` over it (added to `digest`).
///
/// # Errors
/// As [`input::read_release_file`].
fn upgrade_target(
    config: &HelmConfig,
    input: &ChartInput,
    digest: &mut InputDigest,
) -> Result<(Target, Chart), RunnerError> {
    let path = config.release_path.clone().unwrap_or_default();
    let mut release = input::read_release_file(&path)?;
    for (field, value) in [
        (&mut release.chart.name, &input.chart.name),
        (&mut release.chart.repo, &input.chart.repo),
        (&mut release.chart.version, &input.chart.version),
    ] {
        if !value.trim().is_empty() {
            *field = value.clone();
        }
    }
    let json = serde_json::to_vec(&release).expect("a release serializes");
    digest.add("release", &json);
    let target = Target {
        name: Some(release.name),
        namespace: release.namespace,
    };
    Ok((target, release.chart))
}

/// Reads and checks each `valuesFromFile` file, in order: its values are redacted and part of
/// the action's identity.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the entry or the file
/// ([`input::read_values_file`]).
fn read_values_files(
    input: &ChartInput,
    digest: &mut InputDigest,
    redactor: &mut Redactor,
) -> Result<Vec<PathBuf>, RunnerError> {
    let mut files = Vec::new();
    for (i, file) in input.values_from_file.iter().enumerate() {
        if file.trim().is_empty() {
            return Err(input::invalid(format!(
                "valuesFromFile[{i}] is empty: name a file"
            )));
        }
        let file = PathBuf::from(file.trim());
        let v = input::read_values_file(&file)?;
        let json = serde_json::to_vec(&v).expect("values serialize");
        digest.add(&format!("valuesFromFile[{i}]"), &json);
        redactor.add_values(&Value::Object(v.0));
        files.push(file);
    }
    Ok(files)
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

/// What the run adds to the input's flags.
#[derive(Debug, Clone, Default)]
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
/// (upgrade), as the input and `extra` ask.
fn chart_args(
    version: &HelmVersion,
    command: Command,
    release_name: Option<&str>,
    chart_dir: &Path,
    values_files: &[PathBuf],
    input: &ChartInput,
    extra: &Extra,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![command.as_str().into()];
    argv.push(release_name.unwrap_or("--generate-name").into());
    argv.push(chart_dir.into());
    argv.extend(["--output".into(), "json".into()]);
    for f in values_files {
        argv.extend(["--values".into(), f.into()]);
    }
    hooks_and_wait(&mut argv, version, input.no_hooks, input.wait);
    if input.rollback_on_failure {
        argv.push(version.rollback_on_failure_arg().into());
    }
    if let Some(server_side) = input.server_side {
        argv.push(format!("--server-side={server_side}").into());
    }
    if input.force_conflicts {
        argv.push("--force-conflicts".into());
    }
    if input.take_ownership {
        argv.push("--take-ownership".into());
    }
    if extra.dry_run {
        argv.push("--dry-run=server".into());
    }
    if let Some(labels) = &extra.labels {
        argv.extend(["--labels".into(), labels.into()]);
    }
    if command == Command::Install {
        if extra.replace {
            argv.push("--replace".into());
        }
        if input.create_namespace {
            argv.push("--create-namespace".into());
        }
    } else {
        argv.extend(["--history-max".into(), input.max_history.to_string().into()]);
        if input.reuse_values {
            argv.push("--reuse-values".into());
        }
        if input.reset_values {
            argv.push("--reset-values".into());
        }
    }
    argv
}

/// `chart.keyring`'s content when `chart.verify` asks for a signature check, read through the
/// bounded reader; `None` without `verify`.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field: `verify`
/// without `keyring`, `keyring` without `verify`, a chart directory (it has no provenance file),
/// or a keyring that cannot be read.
fn read_keyring(chart: &Chart, source: &ChartSource) -> Result<Option<Vec<u8>>, RunnerError> {
    let keyring = chart.keyring.trim();
    match (chart.verify, keyring.is_empty()) {
        (false, true) => return Ok(None),
        (false, false) => {
            return Err(RunnerError::invalid_input(
                "chart.keyring is set but chart.verify is not: set verify: true to check the \
                 chart's signature, or remove keyring",
            ));
        }
        (true, true) => {
            return Err(RunnerError::invalid_input(
                "chart.verify needs chart.keyring: the public keyring file (gpg --export) the \
                 chart's signature is checked against",
            ));
        }
        (true, false) => {}
    }
    if matches!(source, ChartSource::Local(p) if p.is_dir()) {
        return Err(RunnerError::invalid_input(format!(
            "chart.verify needs a chart archive (.tgz with its .prov beside it) or a \
             repository's chart; chart.name {} is a directory, which carries no signature",
            chart.name
        )));
    }
    let what = format!("chart.keyring {keyring}");
    action_runner::input_file::read_bytes(Path::new(keyring), &what, input::MAX_KEYRING_BYTES)
        .map(Some)
}

/// Whether helm's message says a signature check failed (`helm pull --verify`).
fn looks_like_a_signature_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "openpgp",
        "signature",
        "sha256 sum",
        "provenance",
        ".prov",
        "keyring",
        "verif",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// A failed signature check: an input error (exit 2) naming `chart.verify`, with helm's reason.
fn signature_failed(e: RunnerError) -> RunnerError {
    RunnerError::invalid_input(format!(
        "chart.verify: the chart's signature check failed: {e}"
    ))
}

/// Refuses the apply options helm `version` does not have, before anything is written:
/// `serverSide` and `forceConflicts` exist from Helm 4 on (Helm 4's `helm install --help`),
/// `takeOwnership` from Helm 3.17 on (Helm 3.17's release notes).
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming the field and the version.
fn apply_options_for(input: &ChartInput, version: &HelmVersion) -> Result<(), RunnerError> {
    let refused = if version.major < 4 && input.server_side.is_some() {
        Some(("serverSide", "Helm 4"))
    } else if version.major < 4 && input.force_conflicts {
        Some(("forceConflicts", "Helm 4"))
    } else if version.major == 3 && version.minor < 17 && input.take_ownership {
        Some(("takeOwnership", "Helm 3.17"))
    } else {
        None
    };
    match refused {
        Some((field, since)) => Err(RunnerError::invalid_input(format!(
            "{field} needs {since} or later, and the helm of RUNNER_HELM_BINARY_PATH is {}: \
             remove {field} or run a newer helm",
            version.text
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{ChartAuth, SourceKind};
    use crate::manifest::tests::parse as parse_for;
    use crate::verbs::tests::strings;

    fn parse(text: &str) -> Result<ChartInput, String> {
        match parse_for(Command::Install, text) {
            Ok(HelmInput::Install(i)) => Ok(i),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults() {
        let i = parse("name: a\nchart: {name: c}\n").unwrap();
        assert_eq!(i.max_history, 10);
        assert!(i.wait);
        assert!(i.values.is_none());
        assert!(i.output.go_template().is_none());
    }

    /// `text` is refused, the error holding each of `needles`.
    fn refused(text: &str, needles: &[&str]) {
        let e = parse(text).unwrap_err();
        assert!(needles.iter().all(|n| e.contains(n)), "{e}");
    }

    #[test]
    fn unknown_fields_are_named() {
        refused(
            "name: a\nchart: {name: c}\nvalue: {}\n",
            &["value", "line 3"],
        );
        refused("name: a\nchart: {name: c, url: x}\n", &["url"]);
        refused("output: {additional: {template: x}}\n", &["template"]);
    }

    #[test]
    fn values_never_in_debug() {
        let i = parse("name: a\nvalues: {password: hunter22}\n").unwrap();
        assert!(!format!("{i:?}").contains("hunter22"));
    }

    #[test]
    fn values_sources_and_files() {
        let i = parse(
            "valuesFrom:\n- {kind: ConfigMap, name: a}\n- {kind: Secret, name: b, key: k.yaml, optional: true}\nvaluesFromFile: /x.yaml\n",
        )
        .unwrap();
        let source = |kind, name: &str, key: &str, optional| ValuesSource {
            kind,
            name: name.into(),
            key: key.into(),
            optional,
        };
        assert_eq!(
            i.values_from,
            [
                source(SourceKind::ConfigMap, "a", "values.yaml", false),
                source(SourceKind::Secret, "b", "k.yaml", true)
            ]
        );
        assert_eq!(i.values_from_file, ["/x.yaml"]);
        let i = parse("valuesFromFile: [/a.yaml, /b.yaml]\n").unwrap();
        assert_eq!(i.values_from_file, ["/a.yaml", "/b.yaml"]);
        let i = parse("valuesFromFile: \"\"\n").unwrap();
        assert!(i.values_from_file.is_empty());
        refused("valuesFrom: [{kind: Pod, name: a}]\n", &["Pod"]);
        refused("valuesFrom: [{kind: Secret}]\n", &["name"]);
    }

    #[test]
    fn chart_access() {
        let i = parse(
            "chart: {name: c, repo: 'https://r', auth: {usernameFile: /u, passwordFile: /p}, caFile: /ca.pem, passCredentials: true}\n",
        )
        .unwrap();
        let auth = ChartAuth {
            username_file: "/u".into(),
            password_file: "/p".into(),
            allow_plain_http: false,
            ..ChartAuth::default()
        };
        assert_eq!(i.chart.auth, Some(auth));
        assert_eq!(i.chart.ca_file, "/ca.pem");
        assert!(i.chart.pass_credentials && !i.chart.plain_http);
        // Half of a pair of files: refused when the files are read.
        let half =
            parse("chart: {name: c, repo: 'https://r', auth: {passwordFile: /p}}\n").unwrap();
        let source = chart::resolve(&half.chart).unwrap();
        let e = RepositoryAccess::read(&half.chart, &source)
            .unwrap_err()
            .to_string();
        assert!(e.contains("chart.auth.usernameFile is empty"), "{e}");
        // Two sources at once.
        let both = parse(
            "chart: {name: c, repo: 'https://r', auth: {passwordFile: /p, secretName: regcred}}\n",
        )
        .unwrap();
        let e = RepositoryAccess::read(&both.chart, &source)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("chart.auth takes one source of credentials"),
            "{e}"
        );
        let from_secret =
            parse("chart: {name: c, repo: 'https://r', auth: {secretName: regcred}}\n").unwrap();
        let access = RepositoryAccess::read(&from_secret.chart, &source).unwrap();
        assert_eq!(
            access.from_cluster,
            Some(sources::ClusterCredentials::Secret("regcred".into()))
        );
        let auth = "auth: {usernameFile: /u, passwordFile: /p";
        let i = parse(&format!(
            "chart: {{name: c, {auth}, allowPlainHttp: true}}}}\n"
        ))
        .unwrap();
        assert!(i.chart.auth.unwrap().allow_plain_http);
        refused(
            &format!("chart: {{name: c, {auth}, plainHttp: true}}}}\n"),
            &["plainHttp"],
        );
    }

    #[test]
    fn legacy_go_template() {
        let i = parse("output: {goTemplate: 'a: b'}\n").unwrap();
        assert_eq!(i.output.go_template(), Some("a: b"));
    }

    /// `chart_args` of `input` for an install or upgrade of `shop` from chart `/c`.
    fn args(v: &HelmVersion, command: Command, input: &str, extra: &Extra) -> Vec<String> {
        let input = parse(input).unwrap();
        strings(&chart_args(
            v,
            command,
            Some("shop"),
            Path::new("/c"),
            &[],
            &input,
            extra,
        ))
    }

    /// The apply options become Helm 4's flags; Helm 3 refuses the two it lacks, naming the
    /// field and the version, and `forceConflicts` without server-side apply is refused.
    #[test]
    fn apply_options() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.2").unwrap();
        let all = "name: shop\nserverSide: true\nforceConflicts: true\ntakeOwnership: true\n";
        let a = args(&v4, Command::Upgrade, all, &Extra::default());
        for flag in [
            "--server-side=true",
            "--force-conflicts",
            "--take-ownership",
        ] {
            assert!(a.contains(&flag.to_string()), "{flag} missing from {a:?}");
        }
        let a = args(
            &v4,
            Command::Install,
            "name: shop\nserverSide: false\n",
            &Extra::default(),
        );
        assert!(a.contains(&"--server-side=false".to_string()), "{a:?}");
        let a = args(&v4, Command::Install, "name: shop\n", &Extra::default());
        assert!(
            !a.iter().any(|f| f.starts_with("--server-side")
                || f == "--force-conflicts"
                || f == "--take-ownership"),
            "{a:?}"
        );

        assert!(apply_options_for(&parse(all).unwrap(), &v4).is_ok());
        let owned = parse("name: shop\ntakeOwnership: true\n").unwrap();
        assert!(apply_options_for(&owned, &v3).is_ok());
        let old = HelmVersion::parse("v3.16.4").unwrap();
        let e = apply_options_for(&owned, &old).unwrap_err();
        assert_eq!(e.exit(), action_runner::error::Exit::InvalidInput);
        assert_eq!(
            e.to_string(),
            "takeOwnership needs Helm 3.17 or later, and the helm of RUNNER_HELM_BINARY_PATH is \
             v3.16.4: remove takeOwnership or run a newer helm"
        );
        for (text, field) in [
            ("name: shop\nserverSide: false\n", "serverSide"),
            ("name: shop\nforceConflicts: true\n", "forceConflicts"),
        ] {
            let e = apply_options_for(&parse(text).unwrap(), &v3).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("{field} needs Helm 4 or later")),
                "{e}"
            );
        }
    }

    /// The same input gives each major version its own wait flag, and nothing else differs.
    #[test]
    fn chart_args_per_helm_version() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        let input = parse("name: shop\nwait: true\nnoHooks: true\n").unwrap();
        let install = |v: &HelmVersion| {
            strings(&chart_args(
                v,
                Command::Install,
                Some("shop"),
                Path::new("/s/chart/webapp"),
                &[PathBuf::from("/s/values.json")],
                &input,
                &Extra::default(),
            ))
        };
        let common = [
            "install",
            "shop",
            "/s/chart/webapp",
            "--output",
            "json",
            "--values",
            "/s/values.json",
            "--no-hooks",
        ];
        for (v, wait) in [(&v4, "--wait=watcher"), (&v3, "--wait")] {
            let mut want = common.to_vec();
            want.push(wait);
            assert_eq!(install(v), want, "{v}");
        }

        let upgrade = "wait: false\nreuseValues: true\nresetValues: true\nmaxHistory: 3\n";
        let dry_run = Extra {
            dry_run: true,
            ..Extra::default()
        };
        for v in [&v3, &v4] {
            assert_eq!(
                args(v, Command::Upgrade, upgrade, &dry_run),
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
    }

    /// `--generate-name`, `--labels` and `--replace`; `rollbackOnFailure` is each major's flag,
    /// `createNamespace` an install's only.
    #[test]
    fn chart_args_of_the_run_and_the_options() {
        let v3 = HelmVersion::parse("v3.22.0").unwrap();
        let v4 = HelmVersion::parse("v4.3.1").unwrap();
        let generated = parse("generateName: true\nwait: false\n").unwrap();
        let argv = chart_args(
            &v4,
            Command::Install,
            None,
            Path::new("/c"),
            &[],
            &generated,
            &Extra::default(),
        );
        assert_eq!(strings(&argv)[..2], ["install", "--generate-name"]);
        let extra = Extra {
            replace: true,
            labels: Some("kube-action-runners.io/owner-uid=u-1".into()),
            ..Extra::default()
        };
        assert_eq!(
            args(&v4, Command::Install, "wait: false\n", &extra)[5..],
            [
                "--labels",
                "kube-action-runners.io/owner-uid=u-1",
                "--replace"
            ]
        );
        let undo = "wait: false\nrollbackOnFailure: true\ncreateNamespace: true\n";
        let tail = |v: &HelmVersion, c: Command| args(v, c, undo, &Extra::default())[5..].to_vec();
        assert_eq!(
            tail(&v4, Command::Install),
            ["--rollback-on-failure", "--create-namespace"]
        );
        assert_eq!(
            tail(&v3, Command::Install),
            ["--atomic", "--create-namespace"]
        );
        assert_eq!(
            tail(&v3, Command::Upgrade),
            ["--atomic", "--history-max", "10"]
        );
        assert_eq!(
            tail(&v4, Command::Upgrade),
            ["--rollback-on-failure", "--history-max", "10"]
        );
    }
}
