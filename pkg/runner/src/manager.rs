//! The Manager: reads the configuration and the manifest, drives an [`ActionRunner`] and reports
//! its status.
//!
//! [`Manager::run`] is what touches the process: the signal handlers, the environment, logging,
//! the Kubernetes client, the termination-message file and the exit code. The steps themselves
//! are two functions a test can call in-process with a runner, a reporter and a shutdown signal
//! of its own: [`read_input`] (the manifest and the runner's own checks) and [`drive`] (start,
//! report, wait, report).

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{self, About, Invocation};
use crate::config::{Config, DEFAULT_TERMINATION_MESSAGE_PATH};
use crate::context::ExecutionContext;
use crate::error::{ErrorKind, Exit, RunnerError, one_line};
use crate::events::{Events, Story};
use crate::identity::InputDigest;
use crate::runner::{ActionRunner, Activity, Progress, StartInput, WaitForCompletionInput};
use crate::status::{ActionStatus, Phase, Reason, StatusReporter, now_rfc3339};
use crate::{logging, manifest};

/// How long the final status report may take after SIGTERM. Kubernetes allows 30 s
/// (`terminationGracePeriodSeconds`) before SIGKILL.
pub const REPORT_AFTER_SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);

// The cancel bounds belong to the runner's contract (`runner.rs`); re-exported here, where the
// Manager applies them.
pub use crate::runner::{CANCEL_TIMEOUT, MAX_CANCEL_TIMEOUT};

/// The least time between two progress writes of the status while the runner waits
/// ([`Progress`]).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// How long one progress write may take; a progress write that fails or takes longer is
/// logged and skipped (the final report is what counts).
pub const PROGRESS_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a run ended: the exit code and a one-line message (the reason, on failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The process exit code.
    pub exit: Exit,
    /// One line: the action's outcome, or why the run failed.
    pub message: String,
}

impl Outcome {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Outcome {
            exit,
            message: one_line(&message.into()),
        }
    }

    fn error(e: &RunnerError) -> Self {
        Outcome::new(e.exit(), e.to_string())
    }
}

/// Drives one [`ActionRunner`] through one action and exits with an [`Exit`] code.
///
/// Order (each step's failure ends the run; its one-line reason is logged and written to
/// the termination-message file when that exists):
/// 0. the command line ([`cli`]): `--help` or `--version` prints and exits 0; any other argument
///    exits 2;
/// 1. install the SIGTERM and SIGINT handlers; read `RUNNER_*` ([`Config`]), the manifest, and
///    [`ActionRunner::prepare`] ([`read_input`]): exit 2;
/// 2. build the Kubernetes client and the reporter: exit 3 (no configuration) or 4;
/// 3. [`drive`]: [`StatusReporter::check`] (nothing is written before it passes),
///    [`ActionRunner::start`], report `Running`, [`ActionRunner::wait_for_completion`] bounded
///    by `RUNNER_TIMEOUT` and cancelled by the signals, report the outcome; Events
///    ([`crate::events`]) on the owner and the runner's objects along the way.
pub struct Manager<R, F> {
    runner: R,
    /// Taken when the client exists (once: `run` consumes the Manager).
    reporter: Option<F>,
    /// What `--help` and `--version` say.
    about: Option<About>,
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
        Manager {
            runner,
            reporter: Some(reporter),
            about: None,
        }
    }

    /// The same Manager, with what `--help` and `--version` say about the binary: its name,
    /// version, own variables and the versions it was tested with. Without it, they name the
    /// program as it was called and list the common variables only.
    #[must_use]
    pub fn about(mut self, about: About) -> Self {
        self.about = Some(about);
        self
    }

    /// Runs the whole action from the process environment and returns the exit code. Logging
    /// is set up from the configuration (see [`logging::init`]); when the configuration itself
    /// is invalid, with the defaults, and the reason goes to the default termination-message
    /// path.
    pub async fn run(mut self) -> ExitCode {
        let about = self.about.unwrap_or_else(|| About {
            name: program_name(),
            version: env!("CARGO_PKG_VERSION"),
            summary: "",
            variables: &[],
            tested_with: &[],
            docs: "",
        });
        match cli::parse(about.name, std::env::args_os().skip(1)) {
            Invocation::Run => {}
            Invocation::Help => return print_stdout(&cli::help(&about)),
            Invocation::Version => return print_stdout(&cli::version(&about)),
            Invocation::Invalid(message) => {
                // A person at a terminal reads one plain line; in a pod (an `args:` in the Job),
                // the termination message says it too.
                eprintln!("{message}");
                let path =
                    std::env::var(format!("{}TERMINATION_MESSAGE_PATH", crate::config::PREFIX))
                        .ok()
                        .filter(|p| !p.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into());
                write_termination_message(Path::new(&path), &message);
                return Exit::InvalidInput.into();
            }
        }
        // Before anything else, so that a SIGTERM while the input is read is not the default
        // action (death without a report) but a cancel.
        let mut signals = Signals::new();
        let config = Config::from_env();
        let (dev_mode, termination_path) = match &config {
            Ok(c) => (c.logger_dev_mode, c.termination_message_path.clone()),
            Err(_) => (false, DEFAULT_TERMINATION_MESSAGE_PATH.into()),
        };
        logging::init(dev_mode);
        let outcome = match config {
            Ok(config) => self.execute(&config, signals.recv()).await,
            Err(e) => Outcome::error(&e),
        };
        if outcome.exit == Exit::Succeeded {
            tracing::info!(exit_code = outcome.exit as u8, "{}", outcome.message);
        } else {
            tracing::error!(exit_code = outcome.exit as u8, "{}", outcome.message);
            write_termination_message(&termination_path, &outcome.message);
        }
        outcome.exit.into()
    }

    /// Steps 1 to 3 for `config`, cancelled when `shutdown` resolves (with the exit code to
    /// use).
    async fn execute(&mut self, config: &Config, shutdown: impl Future<Output = Exit>) -> Outcome {
        let input = match read_input(&mut self.runner, config) {
            Ok(input) => input,
            Err(e) => return Outcome::error(&e),
        };
        let client = match crate::client::infer().await {
            Ok(c) => c,
            Err(e) => {
                return Outcome::error(
                    &RunnerError::cluster(
                        "cannot configure the Kubernetes client (in-cluster or kubeconfig)",
                    )
                    .because(e),
                );
            }
        };
        let make_reporter = self.reporter.take().expect("a Manager runs once");
        let reporter = make_reporter(client.clone(), &config.context);
        drive(
            &mut self.runner,
            &config.context,
            input,
            client,
            &reporter,
            shutdown,
        )
        .await
    }
}

/// Step 1: the manifest at `config.input_manifest_path` and the runner's own checks of it
/// ([`ActionRunner::prepare`]); no cluster access.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the file, field or variable at fault.
pub fn read_input<R: ActionRunner>(
    runner: &mut R,
    config: &Config,
) -> Result<(R::Args, InputDigest), RunnerError> {
    let (what, text) = manifest::read_text(&config.input_manifest_path)?;
    let args: R::Args = manifest::parse(&what, &text)?;
    runner.prepare(&config.context, &args)?;
    let mut digest = InputDigest::new();
    digest.add("runner", runner.name().as_bytes());
    digest.add("manifest", text.as_bytes());
    Ok((args, digest))
}

/// The action itself, once its input (the parsed manifest and the digest
/// [`read_input`] started) is read: checks the reporter, starts the action, reports
/// `Running` with the runner's start status, waits for completion, and reports the outcome.
/// `ctx.timeout` bounds all of it from the first request on: the check, the start and the wait
/// share one deadline. `shutdown` resolving (SIGTERM or SIGINT in a process; anything in a
/// test) cancels the start or the wait: the run reports `Cancelled` and ends with the exit code
/// `shutdown` gave.
///
/// Exit codes: as the runner's outcome ([`Exit::Succeeded`] or [`Exit::Failed`]);
/// [`Exit::Failed`] with `DeadlineExceeded` when `ctx.timeout` elapses (while starting, the
/// message quotes the runner's [`Activity`]); a runner's or the
/// reporter's error's own code; a report that fails at the end turns the code into the
/// reporter's error's (3 or 4), unless a signal asked to stop.
pub async fn drive<R, S>(
    runner: &mut R,
    ctx: &ExecutionContext,
    (args, digest): (R::Args, InputDigest),
    client: kube::Client,
    reporter: &S,
    shutdown: impl Future<Output = Exit>,
) -> Outcome
where
    R: ActionRunner,
    S: StatusReporter,
{
    tokio::pin!(shutdown);
    let deadline = ctx.timeout.map(|t| tokio::time::Instant::now() + t);
    let expired = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let timed_out = |doing: &str| {
        format!(
            "timed out after {:?} (RUNNER_TIMEOUT) {doing}",
            ctx.timeout.unwrap_or_default()
        )
    };
    let checked = tokio::select! {
        r = reporter.check() => r,
        () = &mut expired => Err(RunnerError::unavailable(timed_out("checking the status reporter"))),
        exit = &mut shutdown => {
            return Outcome::new(exit, format!("received {}; stopped while starting", signal_name(exit)));
        }
    };
    if let Err(e) = checked {
        return Outcome::error(&e);
    }
    let runner_name = runner.name();
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
    let mut events = Events::new(client.clone(), runner_name, ctx);

    let activity = Activity::default();
    let start = runner.start(StartInput {
        ctx: ctx.clone(),
        args,
        client: client.clone(),
        digest,
        activity: activity.clone(),
    });
    let doing = || match activity.get() {
        a if a.is_empty() => String::new(),
        a => format!(": {a}"),
    };
    let started = tokio::select! {
        r = start => r,
        () = &mut expired => {
            let message = timed_out(&format!("while starting{}", doing()));
            return finish(reporter, &events, &mut status, Reason::DeadlineExceeded, false, message, Exit::Failed).await;
        }
        exit = &mut shutdown => {
            let message = format!("received {}; stopped while starting{}", signal_name(exit), doing());
            return finish(reporter, &events, &mut status, Reason::Cancelled, false, message, exit).await;
        }
    };
    match started {
        Ok(out) => {
            status.runner_status = out.status;
            events.about(out.objects);
            let (story, verb) = if out.adopted {
                (Story::Adopted, "adopted the action its predecessor started")
            } else {
                (Story::Started, "started the action")
            };
            events
                .record(
                    story,
                    &format!("{runner_name} runner {verb} ({})", ctx.name),
                )
                .await;
        }
        // Nothing was written: no status either.
        Err(e) if e.kind() == ErrorKind::InvalidInput => return Outcome::error(&e),
        Err(e) => {
            let exit = e.exit();
            return finish(
                reporter,
                &events,
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
        return Outcome::new(
            e.exit(),
            format!("action started but reporting its status failed: {e}"),
        );
    }
    tracing::info!(status = %status.runner_status, "action started; waiting for completion");

    let (progress, mut progress_rx) = Progress::channel();
    let input = WaitForCompletionInput {
        ctx: ctx.clone(),
        client,
        progress,
    };
    let start_status = status.runner_status.clone();
    // In a block, so that the wait (which holds the runner) is dropped before `cancel`.
    let (reason, succeeded, message, exit) = {
        let wait = runner.wait_for_completion(input.clone());
        let bounded = async {
            tokio::select! {
                r = wait => Some(r),
                () = &mut expired => None,
            }
        };
        tokio::pin!(bounded);
        // Progress is written at most once per PROGRESS_INTERVAL: a change seen sooner waits
        // for the interval's end (`pending`), and only the latest is written.
        let mut next_write = tokio::time::Instant::now();
        let mut pending = false;
        let mut progress_open = true;
        loop {
            tokio::select! {
                r = &mut bounded => break match r {
                    Some(Ok(out)) => {
                        let exit = if out.succeeded { Exit::Succeeded } else { Exit::Failed };
                        status.runner_status = merged(&start_status, &out.status);
                        (Reason::Completed, out.succeeded, out.message, exit)
                    }
                    Some(Err(e)) => (Reason::Error, false, e.to_string(), e.exit()),
                    None => {
                        let message = timed_out("waiting for completion");
                        (Reason::DeadlineExceeded, false, message, Exit::Failed)
                    }
                },
                exit = &mut shutdown => {
                    let message = format!("received {}; stopped waiting for completion", signal_name(exit));
                    break (Reason::Cancelled, false, message, exit);
                }
                changed = progress_rx.changed(), if progress_open && !pending => {
                    progress_open = changed.is_ok();
                    pending = progress_open;
                }
                () = tokio::time::sleep_until(next_write), if pending => {
                    pending = false;
                    let progress = progress_rx.borrow_and_update().clone();
                    status.runner_status = merged(&start_status, &progress);
                    report_progress(reporter, &status).await;
                    next_write = tokio::time::Instant::now() + PROGRESS_INTERVAL;
                }
            }
        }
    };
    // The wait was cut short: the runner may stop what it started (for example Argo's
    // `spec.shutdown`); by default it is left running.
    let message = if matches!(reason, Reason::Cancelled | Reason::DeadlineExceeded) {
        let limit = runner.cancel_timeout().min(MAX_CANCEL_TIMEOUT);
        let message = match tokio::time::timeout(limit, runner.cancel(input)).await {
            Ok(Ok(Some(note))) => format!("{message}; {note}"),
            Ok(Ok(None)) => message,
            Ok(Err(e)) => format!("{message}; stopping the action failed: {e}"),
            Err(_) => format!("{message}; stopping the action timed out after {limit:?}"),
        };
        // The latest progress, with what `cancel` found (it reports through the same handle),
        // is the final status: a progress write still pending is not lost.
        let progress = progress_rx.borrow().clone();
        if !progress.is_null() {
            status.runner_status = merged(&start_status, &progress);
        }
        message
    } else {
        message
    };
    finish(
        reporter,
        &events,
        &mut status,
        reason,
        succeeded,
        message,
        exit,
    )
    .await
}

/// Reports the final status and returns `exit` with `message`; a failed report turns the exit
/// code into the report's error's (unless a signal asked us to stop). After a signal the report
/// may take at most [`REPORT_AFTER_SIGNAL_TIMEOUT`].
async fn finish<S: StatusReporter>(
    reporter: &S,
    events: &Events,
    status: &mut ActionStatus,
    reason: Reason,
    succeeded: bool,
    message: String,
    exit: Exit,
) -> Outcome {
    status.phase = if succeeded {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    status.reason = Some(reason);
    status.message = one_line(&message);
    status.finished_at = Some(now_rfc3339());
    let story = match (succeeded, reason) {
        (true, _) => Story::Succeeded,
        (false, Reason::Cancelled) => Story::Cancelled,
        (false, _) => Story::Failed,
    };
    // The Event and the status report go out together (over HTTP/2, on the connection the
    // wait used: see `client`), so the run ends one round trip after the action did.
    let report = async {
        if reason == Reason::Cancelled {
            tokio::time::timeout(REPORT_AFTER_SIGNAL_TIMEOUT, reporter.report(status))
                .await
                .unwrap_or_else(|_| {
                    Err(RunnerError::unavailable(format!(
                        "timed out after {REPORT_AFTER_SIGNAL_TIMEOUT:?}"
                    )))
                })
        } else {
            reporter.report(status).await
        }
    };
    let ((), reported) = tokio::join!(events.record(story, &status.message), report);
    match reported {
        Ok(()) => Outcome::new(exit, status.message.clone()),
        Err(e) if matches!(exit, Exit::Terminated | Exit::Interrupted) => Outcome::new(
            exit,
            format!("{}; reporting the status failed: {e}", status.message),
        ),
        Err(e) => Outcome::new(
            e.exit(),
            format!("{}; reporting the status failed: {e}", status.message),
        ),
    }
}

/// `base` (an object, or null) with the keys of `extra` (an object) set in it.
fn merged(base: &serde_json::Value, extra: &serde_json::Value) -> serde_json::Value {
    let mut out = match base {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    match extra {
        serde_json::Value::Object(m) => out.extend(m.clone()),
        serde_json::Value::Null => {}
        other => {
            out.insert("progress".into(), other.clone());
        }
    }
    if out.is_empty() && base.is_null() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(out)
    }
}

/// One progress write, bounded by [`PROGRESS_WRITE_TIMEOUT`]; a failure is only logged.
async fn report_progress<S: StatusReporter>(reporter: &S, status: &ActionStatus) {
    match tokio::time::timeout(PROGRESS_WRITE_TIMEOUT, reporter.report(status)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "reporting progress failed; carrying on"),
        Err(_) => tracing::warn!(
            timeout = ?PROGRESS_WRITE_TIMEOUT,
            "reporting progress timed out; carrying on"
        ),
    }
}

/// SIGTERM and SIGINT listeners.
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

/// Writes `message` to the termination-message file (Kubernetes shows it in
/// `kubectl describe pod` and in the container status), only when the file already exists:
/// the kubelet creates it in a pod; elsewhere nothing is written.
/// The name the program was called by, without its directory (for `--help` of a runner that
/// gave no [`About`]); kept for the rest of the process.
fn program_name() -> &'static str {
    let name = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "runner".into());
    Box::leak(name.into_boxed_str())
}

/// Writes `text` to standard output (help, version) and exits 0; a closed pipe (`| head`) is
/// not an error.
fn print_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    ExitCode::SUCCESS
}

fn write_termination_message(path: &Path, message: &str) {
    if path.exists()
        && let Err(e) = std::fs::write(path, format!("{}\n", fit_termination_message(message)))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot write termination message");
    }
}

/// The most the kubelet keeps of a termination message, in bytes (Kubernetes' `Container`
/// `terminationMessagePath` docs: "Message written is intended to be brief final status ...
/// will be truncated by the node if greater than 4096 bytes").
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// `message` cut to fit [`TERMINATION_MESSAGE_LIMIT`] with its newline, at a character
/// boundary, ending in `…` when cut.
pub fn fit_termination_message(message: &str) -> std::borrow::Cow<'_, str> {
    const ELLIPSIS: &str = "…";
    if message.len() < TERMINATION_MESSAGE_LIMIT {
        return message.into();
    }
    let mut cut = TERMINATION_MESSAGE_LIMIT - 1 - ELLIPSIS.len();
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{ELLIPSIS}", &message[..cut]).into()
}

/// Helper for binaries: builds a multi-threaded Tokio runtime, runs `fut` on it, and then shuts
/// the runtime down in the background rather than waiting for its tasks and threads to wind
/// down (idle pooled connections, the resolver's blocking threads): once the run's outcome is
/// known and reported there is nothing left worth waiting for, and the process exits a few
/// milliseconds sooner.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = runtime.block_on(fut);
    runtime.shutdown_background();
    out
}

#[cfg(test)]
mod tests {
    //! Every exit path of [`drive`] and [`read_input`], in-process: a scripted runner, a
    //! reporter that records what it is given, a client no request ever reaches, and a
    //! shutdown signal the test fires. Time is Tokio's paused clock.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::context::KubernetesPlatform;
    use crate::error::ErrorKind;
    use crate::runner::{StartOutput, WaitForCompletionOutput};

    type Script<T> = fn() -> Result<T, RunnerError>;

    /// A runner that answers `start` and `wait_for_completion` from its script, after a delay.
    struct Scripted {
        start: Script<StartOutput>,
        start_takes: Duration,
        wait: Script<WaitForCompletionOutput>,
        wait_takes: Duration,
        /// Progress set while waiting, each after sleeping its duration.
        progress: Vec<(Duration, serde_json::Value)>,
        started: bool,
        cancelled: bool,
        /// How long `cancel` takes, and how long the runner asks it may take (`None`: the
        /// default).
        cancel_takes: Duration,
        asks_cancel: Option<Duration>,
    }

    fn ok_start() -> Result<StartOutput, RunnerError> {
        Ok(StartOutput {
            status: serde_json::json!({"ref": "x"}),
            ..StartOutput::default()
        })
    }

    fn succeeded() -> Result<WaitForCompletionOutput, RunnerError> {
        Ok(WaitForCompletionOutput {
            succeeded: true,
            message: "all good".into(),
            ..Default::default()
        })
    }

    fn runner(start: Script<StartOutput>, wait: Script<WaitForCompletionOutput>) -> Scripted {
        Scripted {
            start,
            start_takes: Duration::ZERO,
            wait,
            wait_takes: Duration::from_secs(1),
            progress: Vec::new(),
            started: false,
            cancelled: false,
            cancel_takes: Duration::ZERO,
            asks_cancel: None,
        }
    }

    impl ActionRunner for Scripted {
        type Args = serde_json::Value;

        fn name(&self) -> &'static str {
            "scripted"
        }

        fn prepare(
            &mut self,
            _: &ExecutionContext,
            args: &serde_json::Value,
        ) -> Result<(), RunnerError> {
            if args.get("bad").is_some() {
                return Err(RunnerError::invalid_input(
                    "input manifest: bad is not allowed",
                ));
            }
            Ok(())
        }

        async fn start(
            &mut self,
            input: StartInput<serde_json::Value>,
        ) -> Result<StartOutput, RunnerError> {
            self.started = true;
            input.activity.set("fetching something slow");
            tokio::time::sleep(self.start_takes).await;
            (self.start)()
        }

        async fn wait_for_completion(
            &mut self,
            input: WaitForCompletionInput,
        ) -> Result<WaitForCompletionOutput, RunnerError> {
            for (after, p) in &self.progress {
                tokio::time::sleep(*after).await;
                input.progress.set(p.clone());
            }
            tokio::time::sleep(self.wait_takes).await;
            (self.wait)()
        }

        async fn cancel(
            &mut self,
            input: WaitForCompletionInput,
        ) -> Result<Option<String>, RunnerError> {
            self.cancelled = true;
            input
                .progress
                .set(serde_json::json!({"stoppedBy": "cancel"}));
            tokio::time::sleep(self.cancel_takes).await;
            Ok(Some("stopped it".into()))
        }

        fn cancel_timeout(&self) -> Duration {
            self.asks_cancel.unwrap_or(CANCEL_TIMEOUT)
        }
    }

    /// Records every status; fails `check`, or the report numbered `fail_report` (0-based),
    /// with the error `failure` makes.
    #[derive(Clone, Default)]
    struct Recorder {
        reports: Arc<Mutex<Vec<ActionStatus>>>,
        fail_check: bool,
        fail_report: Option<usize>,
        failure: Option<fn() -> RunnerError>,
    }

    impl Recorder {
        fn phases(&self) -> Vec<(Phase, Option<Reason>)> {
            self.reports
                .lock()
                .unwrap()
                .iter()
                .map(|s| (s.phase, s.reason))
                .collect()
        }

        fn last(&self) -> ActionStatus {
            self.reports
                .lock()
                .unwrap()
                .last()
                .cloned()
                .expect("a report")
        }
    }

    impl StatusReporter for Recorder {
        async fn check(&self) -> Result<(), RunnerError> {
            match (self.fail_check, self.failure) {
                (true, Some(f)) => Err(f()),
                _ => Ok(()),
            }
        }

        async fn report(&self, status: &ActionStatus) -> Result<(), RunnerError> {
            let mut reports = self.reports.lock().unwrap();
            if self.fail_report == Some(reports.len()) {
                return Err(self.failure.expect("a failure")());
            }
            reports.push(status.clone());
            Ok(())
        }
    }

    /// A client whose every request fails: the scripted runner never sends one.
    fn client() -> kube::Client {
        let service = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, tower::BoxError>(
                "no cluster in unit tests".into(),
            )
        });
        kube::Client::new(service, "default")
    }

    fn ctx(timeout: Option<Duration>) -> ExecutionContext {
        ExecutionContext {
            name: "act".into(),
            dry_run: false,
            timeout,
            platform: KubernetesPlatform {
                namespace: "ns".into(),
                service_account_name: None,
                owner_reference: None,
            },
        }
    }

    /// Runs `r` with `reporter`; `shutdown` fires `signal` after `after` if given.
    async fn run(
        r: &mut Scripted,
        reporter: &Recorder,
        timeout: Option<Duration>,
        signal: Option<(Duration, Exit)>,
    ) -> Outcome {
        let shutdown = async move {
            match signal {
                Some((after, exit)) => {
                    tokio::time::sleep(after).await;
                    exit
                }
                None => std::future::pending().await,
            }
        };
        drive(
            r,
            &ctx(timeout),
            (serde_json::json!({}), InputDigest::new()),
            client(),
            reporter,
            shutdown,
        )
        .await
    }

    fn succeeded_with_status() -> Result<WaitForCompletionOutput, RunnerError> {
        Ok(WaitForCompletionOutput {
            succeeded: true,
            message: "done".into(),
            status: serde_json::json!({"ref": "y", "revision": 2}),
        })
    }

    /// The start status is reported while running; the keys of a final status from the wait
    /// are set in it (a key of both is replaced).
    #[tokio::test(start_paused = true)]
    async fn a_final_runner_status_is_set_in_the_start_status() {
        let rec = Recorder::default();
        let out = run(
            &mut runner(ok_start, succeeded_with_status),
            &rec,
            None,
            None,
        )
        .await;
        assert_eq!(out.exit, Exit::Succeeded);
        let reports = rec.reports.lock().unwrap().clone();
        assert_eq!(reports[0].runner_status, serde_json::json!({"ref": "x"}));
        assert_eq!(
            reports[1].runner_status,
            serde_json::json!({"ref": "y", "revision": 2})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn succeeded_exits_0_and_reports_running_then_succeeded() {
        let rec = Recorder::default();
        let out = run(&mut runner(ok_start, succeeded), &rec, None, None).await;
        assert_eq!(out, Outcome::new(Exit::Succeeded, "all good"));
        assert_eq!(
            rec.phases(),
            [
                (Phase::Running, None),
                (Phase::Succeeded, Some(Reason::Completed))
            ]
        );
        let last = rec.last();
        assert_eq!(last.runner_status, serde_json::json!({"ref": "x"}));
        assert!(last.finished_at.is_some());
    }

    #[test]
    fn termination_messages_fit_4_kib_and_are_never_cut_mid_character() {
        assert_eq!(fit_termination_message("short"), "short");
        for pad in 0..4 {
            let long = format!("{}{}", "x".repeat(pad), "é".repeat(3000));
            let fit = fit_termination_message(&long);
            assert!(fit.len() < TERMINATION_MESSAGE_LIMIT, "{}", fit.len());
            assert!(fit.len() > TERMINATION_MESSAGE_LIMIT - 8);
            assert!(fit.ends_with('…'));
        }
    }

    /// Progress is written at most once per PROGRESS_INTERVAL, the latest each time; the final
    /// status has the start status and the outcome's own keys.
    #[tokio::test(start_paused = true)]
    async fn progress_is_written_at_most_once_a_second_and_the_outcome_status_kept() {
        let rec = Recorder::default();
        let ms = Duration::from_millis;
        let mut r = runner(ok_start, || {
            Ok(WaitForCompletionOutput {
                succeeded: true,
                message: "done".into(),
                status: serde_json::json!({"outputs": {"p": "v"}}),
            })
        });
        r.progress = [(100, 1), (100, 2), (100, 3), (1200, 4)]
            .into_iter()
            .map(|(after, n)| (ms(after), serde_json::json!({"n": n})))
            .collect();
        r.wait_takes = Duration::from_secs(3);
        let out = run(&mut r, &rec, None, None).await;
        assert_eq!(out.exit, Exit::Succeeded);
        let reports = rec.reports.lock().unwrap().clone();
        let seen: Vec<serde_json::Value> = reports
            .iter()
            .map(|s| s.runner_status.get("n").cloned().unwrap_or_default())
            .collect();
        // Running (start), n=1 at once, n=3 one interval later (n=2 was replaced), n=4, final.
        assert_eq!(
            seen,
            [
                serde_json::Value::Null,
                1.into(),
                3.into(),
                4.into(),
                serde_json::Value::Null
            ]
        );
        assert!(reports[..4].iter().all(|s| s.phase == Phase::Running));
        assert_eq!(
            rec.last().runner_status,
            serde_json::json!({"ref": "x", "outputs": {"p": "v"}})
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_action_exits_1() {
        let rec = Recorder::default();
        let failed = || {
            Ok(WaitForCompletionOutput {
                succeeded: false,
                message: "step 2 exited 1".into(),
                ..Default::default()
            })
        };
        let out = run(&mut runner(ok_start, failed), &rec, None, None).await;
        assert_eq!(out, Outcome::new(Exit::Failed, "step 2 exited 1"));
        assert_eq!(rec.last().phase, Phase::Failed);
        assert_eq!(rec.last().reason, Some(Reason::Completed));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_exits_1_with_deadline_exceeded() {
        let rec = Recorder::default();
        let mut r = runner(ok_start, succeeded);
        r.wait_takes = Duration::from_secs(3600);
        let out = run(&mut r, &rec, Some(Duration::from_secs(5)), None).await;
        assert_eq!(out.exit, Exit::Failed);
        assert!(out.message.contains("RUNNER_TIMEOUT"), "{}", out.message);
        assert!(r.cancelled, "the runner may stop what it started");
        assert!(out.message.ends_with("; stopped it"), "{}", out.message);
        assert_eq!(rec.last().reason, Some(Reason::DeadlineExceeded));
        assert_eq!(
            rec.last().runner_status["stoppedBy"],
            "cancel",
            "what cancel reports is in the final status"
        );
    }

    /// `RUNNER_TIMEOUT` bounds the start too: a start that hangs ends at the deadline, with what
    /// the runner said it was doing; the wait gets only what is left of the same deadline.
    #[tokio::test(start_paused = true)]
    async fn the_timeout_bounds_the_start_and_the_wait_together() {
        let rec = Recorder::default();
        let mut r = runner(ok_start, succeeded);
        r.start_takes = Duration::from_secs(3600);
        let t0 = tokio::time::Instant::now();
        let out = run(&mut r, &rec, Some(Duration::from_secs(20)), None).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(20));
        assert_eq!(out.exit, Exit::Failed);
        assert_eq!(
            out.message,
            "timed out after 20s (RUNNER_TIMEOUT) while starting: fetching something slow"
        );
        assert_eq!(rec.last().reason, Some(Reason::DeadlineExceeded));

        let rec = Recorder::default();
        let mut r = runner(ok_start, succeeded);
        r.start_takes = Duration::from_secs(15);
        r.wait_takes = Duration::from_secs(10);
        let t0 = tokio::time::Instant::now();
        let out = run(&mut r, &rec, Some(Duration::from_secs(20)), None).await;
        assert!(t0.elapsed() < Duration::from_secs(21), "{:?}", t0.elapsed());
        assert_eq!(
            rec.last().reason,
            Some(Reason::DeadlineExceeded),
            "{}",
            out.message
        );
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_input_from_start_exits_2_and_reports_nothing() {
        let rec = Recorder::default();
        let bad = || {
            Err(RunnerError::invalid_input(
                "spec.entrypoint: no template main",
            ))
        };
        let out = run(&mut runner(bad, succeeded), &rec, None, None).await;
        assert_eq!(
            out,
            Outcome::new(Exit::InvalidInput, "spec.entrypoint: no template main")
        );
        assert!(rec.phases().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn errors_keep_their_exit_code_and_are_reported() {
        for (make, exit) in [
            (
                (|| Err(RunnerError::cluster("create Workflow ns/act: forbidden")))
                    as Script<StartOutput>,
                Exit::Cluster,
            ),
            (
                || {
                    Err(RunnerError::unavailable(
                        "create Workflow ns/act: connection refused",
                    ))
                },
                Exit::Unavailable,
            ),
            (
                || Err(RunnerError::failed("helm install: chart not found")),
                Exit::Failed,
            ),
        ] {
            let rec = Recorder::default();
            let out = run(&mut runner(make, succeeded), &rec, None, None).await;
            assert_eq!(out.exit, exit, "{}", out.message);
            assert_eq!(rec.phases(), [(Phase::Failed, Some(Reason::Error))]);
        }
        let rec = Recorder::default();
        let lost = || {
            Err(RunnerError::unavailable(
                "watch Workflow ns/act: the watch stream ended",
            ))
        };
        let out = run(&mut runner(ok_start, lost), &rec, None, None).await;
        assert_eq!(out.exit, Exit::Unavailable);
        assert_eq!(rec.last().reason, Some(Reason::Error));
    }

    /// A runner may ask for more than [`CANCEL_TIMEOUT`] to stop what it started, up to
    /// [`MAX_CANCEL_TIMEOUT`].
    #[tokio::test(start_paused = true)]
    async fn cancel_gets_the_time_the_runner_asks_for_up_to_the_cap() {
        for (asks, takes, finishes) in [
            (None, 8, false),
            (Some(10), 8, true),
            (Some(60), 14, true),
            (Some(60), 20, false),
        ] {
            let rec = Recorder::default();
            let mut r = runner(ok_start, succeeded);
            r.wait_takes = Duration::from_secs(3600);
            r.cancel_takes = Duration::from_secs(takes);
            r.asks_cancel = asks.map(Duration::from_secs);
            let signal = Some((Duration::from_secs(2), Exit::Terminated));
            let out = run(&mut r, &rec, None, signal).await;
            assert_eq!(out.exit, Exit::Terminated);
            assert_eq!(
                out.message.contains("stopped it"),
                finishes,
                "{asks:?} {takes}: {}",
                out.message
            );
            if !finishes {
                let limit = asks.map_or(CANCEL_TIMEOUT, Duration::from_secs);
                let limit = limit.min(MAX_CANCEL_TIMEOUT);
                assert!(
                    out.message.contains(&format!("timed out after {limit:?}")),
                    "{}",
                    out.message
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_and_sigint_while_waiting_cancel_with_143_and_130() {
        for exit in [Exit::Terminated, Exit::Interrupted] {
            let rec = Recorder::default();
            let mut r = runner(ok_start, succeeded);
            r.wait_takes = Duration::from_secs(3600);
            let out = run(&mut r, &rec, None, Some((Duration::from_secs(2), exit))).await;
            assert_eq!(out.exit, exit);
            assert!(out.message.contains("stopped waiting"), "{}", out.message);
            assert!(r.cancelled);
            assert_eq!(rec.last().reason, Some(Reason::Cancelled));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_while_starting_cancels_the_start() {
        let rec = Recorder::default();
        let mut r = runner(ok_start, succeeded);
        r.start_takes = Duration::from_secs(60);
        let out = run(
            &mut r,
            &rec,
            None,
            Some((Duration::from_secs(1), Exit::Terminated)),
        )
        .await;
        assert_eq!(out.exit, Exit::Terminated);
        assert_eq!(
            out.message,
            "received SIGTERM; stopped while starting: fetching something slow"
        );
        assert_eq!(rec.phases(), [(Phase::Failed, Some(Reason::Cancelled))]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_reporter_check_stops_before_anything_starts() {
        let rec = Recorder {
            fail_check: true,
            failure: Some(|| RunnerError::invalid_input("status ConfigMap ns/act not found")),
            ..Recorder::default()
        };
        let mut r = runner(ok_start, succeeded);
        let out = run(&mut r, &rec, None, None).await;
        assert_eq!(out.exit, Exit::InvalidInput);
        assert!(!r.started, "start must not run");
    }

    #[tokio::test(start_paused = true)]
    async fn failing_reports_turn_into_the_reporters_error() {
        // The `Running` report.
        let rec = Recorder {
            fail_report: Some(0),
            failure: Some(|| RunnerError::unavailable("patch status ConfigMap ns/act: 503")),
            ..Recorder::default()
        };
        let out = run(&mut runner(ok_start, succeeded), &rec, None, None).await;
        assert_eq!(out.exit, Exit::Unavailable);
        assert!(
            out.message.starts_with("action started but reporting"),
            "{}",
            out.message
        );
        // The final report.
        let rec = Recorder {
            fail_report: Some(1),
            failure: Some(|| RunnerError::cluster("patch status ConfigMap ns/act: forbidden")),
            ..Recorder::default()
        };
        let out = run(&mut runner(ok_start, succeeded), &rec, None, None).await;
        assert_eq!(out.exit, Exit::Cluster);
        assert!(
            out.message
                .contains("all good; reporting the status failed"),
            "{}",
            out.message
        );
        // After a signal the signal's code stays.
        let rec = Recorder {
            reports: Arc::default(),
            ..rec
        };
        let mut r = runner(ok_start, succeeded);
        r.wait_takes = Duration::from_secs(3600);
        let out = run(
            &mut r,
            &rec,
            None,
            Some((Duration::from_secs(1), Exit::Terminated)),
        )
        .await;
        assert_eq!(out.exit, Exit::Terminated);
    }

    #[test]
    fn read_input_errors_are_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let config = |manifest: &Path| {
            Config::from_vars([
                (
                    "RUNNER_INPUT_MANIFEST_PATH".to_string(),
                    manifest.display().to_string(),
                ),
                ("RUNNER_CONTEXT_NAME".into(), "act".into()),
                ("RUNNER_CONTEXT_PLATFORM_NAMESPACE".into(), "ns".into()),
            ])
            .unwrap()
        };
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "bad: true\n").unwrap();
        let e = read_input(&mut runner(ok_start, succeeded), &config(&bad)).unwrap_err();
        assert_eq!(
            (e.kind(), e.exit()),
            (ErrorKind::InvalidInput, Exit::InvalidInput)
        );
        let missing = dir.path().join("missing.yaml");
        let e = read_input(&mut runner(ok_start, succeeded), &config(&missing)).unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(e.to_string().contains("missing.yaml"), "{e}");
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "fine: 1\n").unwrap();
        let (args, digest) = read_input(&mut runner(ok_start, succeeded), &config(&good)).unwrap();
        assert_eq!(args, serde_json::json!({"fine": 1}));
        // The same manifest is the same input; another text (even one that parses the same)
        // is another.
        let again = read_input(&mut runner(ok_start, succeeded), &config(&good)).unwrap();
        assert_eq!(digest.finish(), again.1.finish());
        std::fs::write(&good, "fine:  1\n").unwrap();
        let other = read_input(&mut runner(ok_start, succeeded), &config(&good)).unwrap();
        assert_ne!(digest.finish(), other.1.finish());
    }
}
