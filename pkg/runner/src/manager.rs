//! The Manager: reads the configuration and the manifest, drives an [`ActionRunner`] and reports
//! its status.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::context::ExecutionContext;
use crate::error::{Exit, RunnerError, one_line};
use crate::runner::{ActionRunner, StartInput, WaitForCompletionInput};
use crate::status::{ActionStatus, Phase, Reason, StatusReporter, now_rfc3339};
use crate::{logging, manifest};

/// How long the final status report may take after SIGTERM. Kubernetes allows 30 s
/// (`terminationGracePeriodSeconds`) before SIGKILL.
const REPORT_AFTER_SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Drives one [`ActionRunner`] through one action and exits with an [`Exit`] code.
///
/// Order (each step's failure ends the run; its one-line reason is logged and written to
/// the termination-message file when that exists):
/// 1. read `RUNNER_*` ([`Config`]) and the manifest, and [`ActionRunner::prepare`]: exit 2;
/// 2. build the Kubernetes client and the reporter, and [`StatusReporter::check`]: exit 3
///    (exit 2 if the status ConfigMap is missing); nothing is written before this point;
/// 3. [`ActionRunner::start`], report `Running` with the runner's start status;
/// 4. [`ActionRunner::wait_for_completion`], bounded by `RUNNER_TIMEOUT`, cancelled by SIGTERM
///    or SIGINT; report the final phase, reason, message and `finishedAt`.
pub struct Manager<R, F> {
    runner: R,
    reporter: F,
}

impl<R, F, S> Manager<R, F>
where
    R: ActionRunner,
    F: FnOnce(kube::Client, &ExecutionContext) -> S,
    S: StatusReporter,
{
    /// A Manager for `runner`; `reporter` builds the [`StatusReporter`] once the client exists,
    /// e.g. `|client, ctx| ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)`
    /// or `|_, _| NoopReporter`.
    pub fn new(runner: R, reporter: F) -> Self {
        Manager { runner, reporter }
    }

    /// Runs the whole action from the process environment and returns the exit code; logging
    /// is set up here (see [`logging::init`]).
    pub async fn run(self) -> ExitCode {
        logging::init(dev_mode_hint());
        let termination_path = std::env::var("RUNNER_TERMINATION_MESSAGE_PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| crate::config::DEFAULT_TERMINATION_MESSAGE_PATH.into());
        let (exit, message) = self.execute().await;
        if exit == Exit::Succeeded {
            tracing::info!(exit_code = exit as u8, "{message}");
        } else {
            tracing::error!(exit_code = exit as u8, "{message}");
            write_termination_message(Path::new(&termination_path), &message);
        }
        exit.into()
    }

    /// Runs the action and returns the exit code and a one-line outcome message.
    pub async fn execute(mut self) -> (Exit, String) {
        let (config, args) = match read_input(&mut self.runner) {
            Ok(input) => input,
            Err(e) => return (e.exit(), e.to_string()),
        };
        let ctx = config.context.clone();
        let client = match crate::client::infer().await {
            Ok(c) => c,
            Err(e) => {
                return (
                    Exit::Cluster,
                    format!(
                        "cannot configure the Kubernetes client (in-cluster or kubeconfig): {}",
                        one_line(&crate::error::error_chain(&e))
                    ),
                );
            }
        };
        let reporter = (self.reporter)(client.clone(), &ctx);
        if let Err(e) = reporter.check().await {
            return (e.exit(), e.to_string());
        }

        let mut signals = Signals::new();
        let runner_name = self.runner.name();
        let mut status = ActionStatus {
            runner: runner_name.into(),
            context_name: ctx.name.clone(),
            phase: Phase::Running,
            reason: None,
            message: String::new(),
            dry_run: ctx.dry_run,
            started_at: now_rfc3339(),
            finished_at: None,
            runner_status: serde_json::Value::Null,
        };
        tracing::info!(runner = runner_name, context = %ctx.name, namespace = %ctx.platform.namespace,
            dry_run = ctx.dry_run, "starting action");

        let start = self.runner.start(StartInput {
            ctx: ctx.clone(),
            args,
            client: client.clone(),
        });
        let started = tokio::select! {
            r = start => r,
            exit = signals.recv() => {
                return finish(&reporter, &mut status, Reason::Cancelled, false,
                    format!("received {}; stopped while starting", signal_name(exit)), exit).await;
            }
        };
        match started {
            Ok(out) => status.runner_status = out.status,
            Err(RunnerError::InvalidInput(msg)) => return (Exit::InvalidInput, msg),
            Err(e) => {
                let exit = e.exit();
                return finish(
                    &reporter,
                    &mut status,
                    Reason::Error,
                    false,
                    e.to_string(),
                    exit,
                )
                .await;
            }
        }
        if let Err(e) = reporter.report(&status).await {
            return (
                e.exit(),
                format!("action started but reporting its status failed: {e}"),
            );
        }
        tracing::info!(status = %status.runner_status, "action started; waiting for completion");

        let wait = self.runner.wait_for_completion(WaitForCompletionInput {
            ctx: ctx.clone(),
            client,
        });
        let bounded = async {
            match ctx.timeout {
                Some(t) => tokio::time::timeout(t, wait).await.ok(),
                None => Some(wait.await),
            }
        };
        tokio::select! {
            r = bounded => match r {
                Some(Ok(out)) => {
                    let exit = if out.succeeded { Exit::Succeeded } else { Exit::Failed };
                    finish(&reporter, &mut status, Reason::Completed, out.succeeded, out.message, exit).await
                }
                Some(Err(e)) => {
                    let exit = e.exit();
                    finish(&reporter, &mut status, Reason::Error, false, e.to_string(), exit).await
                }
                None => {
                    let t = ctx.timeout.unwrap_or_default();
                    finish(&reporter, &mut status, Reason::DeadlineExceeded, false,
                        format!("timed out after {t:?} (RUNNER_TIMEOUT) waiting for completion"),
                        Exit::Failed).await
                }
            },
            exit = signals.recv() => {
                finish(&reporter, &mut status, Reason::Cancelled, false,
                    format!("received {}; stopped waiting for completion", signal_name(exit)), exit).await
            }
        }
    }
}

/// Step 1: configuration, manifest and the runner's own checks (no cluster access).
fn read_input<R: ActionRunner>(runner: &mut R) -> Result<(Config, R::Args), RunnerError> {
    let config = Config::from_env()?;
    let args: R::Args = manifest::read(&config.input_manifest_path)?;
    runner.prepare(&config.context, &args)?;
    Ok((config, args))
}

/// Reports the final status and returns `exit` with `message`; a failed report turns the exit
/// code into 3 (unless a signal asked us to stop).
async fn finish<S: StatusReporter>(
    reporter: &S,
    status: &mut ActionStatus,
    reason: Reason,
    succeeded: bool,
    message: String,
    exit: Exit,
) -> (Exit, String) {
    status.phase = if succeeded {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    status.reason = Some(reason);
    status.message = one_line(&message);
    status.finished_at = Some(now_rfc3339());
    let report = reporter.report(status);
    let reported = if reason == Reason::Cancelled {
        tokio::time::timeout(REPORT_AFTER_SIGNAL_TIMEOUT, report)
            .await
            .unwrap_or_else(|_| Err(RunnerError::Cluster("timed out".into())))
    } else {
        report.await
    };
    match reported {
        Ok(()) => (exit, status.message.clone()),
        Err(e) if matches!(exit, Exit::Terminated | Exit::Interrupted) => (
            exit,
            format!("{}; reporting the status failed: {e}", status.message),
        ),
        Err(e) => (
            Exit::Cluster,
            format!("{}; reporting the status failed: {e}", status.message),
        ),
    }
}

/// SIGTERM and SIGINT listeners, installed before the action starts.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves with [`Exit::Terminated`] on SIGTERM or [`Exit::Interrupted`] on SIGINT.
    async fn recv(&mut self) -> Exit {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(&mut self.term) => Exit::Terminated,
            () = next(&mut self.int) => Exit::Interrupted,
        }
    }
}

fn signal_name(exit: Exit) -> &'static str {
    if exit == Exit::Interrupted {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// `RUNNER_LOGGER_DEV_MODE` read leniently, only to pick the log format before the full
/// configuration (which reports a bad value) is read.
fn dev_mode_hint() -> bool {
    matches!(
        std::env::var("RUNNER_LOGGER_DEV_MODE").as_deref(),
        Ok("1" | "t" | "T" | "TRUE" | "true" | "True")
    )
}

/// Writes `message` to the termination-message file (Kubernetes shows it in
/// `kubectl describe pod` and in the container status), only when the file already exists:
/// the kubelet creates it in a pod; elsewhere nothing is written.
fn write_termination_message(path: &Path, message: &str) {
    if path.exists()
        && let Err(e) = std::fs::write(path, format!("{message}\n"))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot write termination message");
    }
}

/// Helper for binaries: builds a multi-threaded Tokio runtime and runs `fut` on it.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}
