//! The Manager: reads the configuration and the manifest, drives an [`ActionRunner`] and reports
//! its status.
//!
//! [`Manager::run`] is what touches the process: the signal handlers, the environment (read
//! once, here: the common [`Config`] and the runner's own [`ActionRunner::Config`]), logging,
//! the Kubernetes client, the termination-message file and the exit code. The steps themselves
//! are two functions a test can call in-process with a runner, both configurations, a reporter
//! and a shutdown signal of its own: [`read_input`] (the manifest and the runner's own checks)
//! and [`drive`] (start, report, wait, report).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::{self, About, Invocation};
use crate::config::{Config, DEFAULT_TERMINATION_MESSAGE_PATH, ProcessEnv};
use crate::error::{ErrorKind, Exit, RunnerError, one_line};
use crate::events::{Events, Story};
use crate::identity::InputDigest;
use crate::runner::{
    ActionRunner, Activity, FromManifest, Progress, StartInput, StartOutput,
    WaitForCompletionInput, WaitForCompletionOutput,
};
use crate::status::{ActionStatus, Phase, Reason, StatusReporter, now_rfc3339};
use crate::{logging, manifest, vars};

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
/// 1. install the SIGTERM and SIGINT handlers; read the environment once: `RUNNER_*` ([`Config`]
///    and the runner's own [`ActionRunner::Config`]); the manifest, and
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
    F: FnOnce(kube::Client, &crate::ExecutionContext) -> S,
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
        let about = self.about.unwrap_or_else(anonymous);
        match cli::parse(about.name, std::env::args_os().skip(1)) {
            Invocation::Run => {}
            Invocation::Help => return print_stdout(&cli::help(&about)),
            Invocation::Version => return print_stdout(&cli::version(&about)),
            Invocation::Invalid(message) => return refuse_arguments(&message, &environment()),
        }
        // Before anything else, so that a SIGTERM while the input is read is not the default
        // action (death without a report) but a cancel.
        let mut signals = Signals::new();
        let vars = environment();
        let config = Config::from_vars(&vars);
        let (dev_mode, termination_path) = match &config {
            Ok(c) => (c.logger_dev_mode, c.termination_message_path.clone()),
            Err(_) => (false, DEFAULT_TERMINATION_MESSAGE_PATH.into()),
        };
        logging::init(dev_mode, ProcessEnv::from_vars(&vars).rust_log.as_deref());
        let configured = config.and_then(|c| Ok((vars::read::<R::Config>(&vars)?, c)));
        let outcome = match configured {
            Ok((own, config)) => self.execute(&config, own, signals.recv()).await,
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

    /// Steps 1 to 3 for `config` and the runner's own configuration `own`, cancelled when
    /// `shutdown` resolves (with the exit code to use).
    async fn execute(
        &mut self,
        config: &Config,
        own: R::Config,
        shutdown: impl Future<Output = Exit>,
    ) -> Outcome {
        let input = match read_input(&mut self.runner, config, own) {
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
        drive(&mut self.runner, config, input, client, &reporter, shutdown).await
    }
}

/// The process environment, read once per run: the one place the framework reads it. A name or
/// value that is not Unicode is read lossily (a variable of the runners' cannot be such).
fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
        .collect()
}

/// What `--help` and `--version` say of a runner that gave no [`About`].
fn anonymous() -> About {
    About {
        name: program_name(),
        version: env!("CARGO_PKG_VERSION"),
        summary: "",
        variables: &[],
        tested_with: &[],
        docs: "",
    }
}

/// A command line other than a lone `--help` or `--version`: one plain line on standard error
/// for a person at a terminal and, in a pod (an `args:` in the Job), in the termination
/// message (`RUNNER_TERMINATION_MESSAGE_PATH` among `vars`, or the default); exit 2.
fn refuse_arguments(message: &str, vars: &[(String, String)]) -> ExitCode {
    eprintln!("{message}");
    let set = vars
        .iter()
        .find(|(k, _)| k == "RUNNER_TERMINATION_MESSAGE_PATH")
        .map(|(_, v)| v.clone());
    let path = vars::non_empty(set).unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into());
    write_termination_message(Path::new(&path), message);
    Exit::InvalidInput.into()
}

/// Step 1: the manifest at `config.input_manifest_path`, parsed with the runner's
/// [`FromManifest`], and the runner's own checks of it and of its configuration `own`
/// ([`ActionRunner::prepare`]); no cluster access.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the file, field or variable at fault.
pub fn read_input<R: ActionRunner>(
    runner: &mut R,
    config: &Config,
    own: R::Config,
) -> Result<(R::Args, InputDigest), RunnerError> {
    let (what, text) = manifest::read_text(&config.input_manifest_path)?;
    let args = manifest::parse_with(&what, &text, |d| R::Args::from_manifest(config, &own, d))?;
    runner.prepare(config, own, &args)?;
    let mut digest = InputDigest::new();
    digest.add("runner", runner.name().as_bytes());
    digest.add("manifest", text.as_bytes());
    Ok((args, digest))
}

/// The action itself, once its input (the parsed manifest and the digest [`read_input`]
/// started) is read: checks the reporter, starts the action, reports `Running` with the runner's
/// start status, waits for completion, and reports the outcome. `config.context.timeout` bounds
/// all of it from the first request on: the check, the start and the wait share one deadline.
/// `shutdown` resolving (SIGTERM or SIGINT in a process; anything in a test) cancels the start
/// or the wait: the run reports `Cancelled` and ends with the exit code `shutdown` gave.
///
/// Exit codes: as the runner's outcome ([`Exit::Succeeded`] or [`Exit::Failed`]);
/// [`Exit::Failed`] with `DeadlineExceeded` when the timeout elapses (while starting, the
/// message quotes the runner's [`Activity`]); a runner's or the reporter's error's own code; a
/// report that fails at the end turns the code into the reporter's error's (3 or 4), unless a
/// signal asked to stop.
pub async fn drive<R, S>(
    runner: &mut R,
    config: &Config,
    (args, digest): (R::Args, InputDigest),
    client: kube::Client,
    reporter: &S,
    shutdown: impl Future<Output = Exit>,
) -> Outcome
where
    R: ActionRunner,
    S: StatusReporter,
{
    let ctx = &config.context;
    let mut bounds = Bounds::new(ctx.timeout, shutdown);
    if let Err(outcome) = check(reporter, &mut bounds).await {
        return outcome;
    }
    tracing::info!(runner = runner.name(), context = %ctx.name, namespace = %ctx.platform.namespace,
        dry_run = ctx.dry_run, "starting action");
    let mut report = Report::new(runner.name(), config, client.clone(), reporter);
    let input = StartInput {
        ctx: ctx.clone(),
        args,
        client: client.clone(),
        digest,
        activity: Activity::default(),
    };
    if let Err(outcome) = start(runner, &mut report, &mut bounds, input).await {
        return outcome;
    }
    let (progress, progress_rx) = Progress::channel();
    let input = WaitForCompletionInput {
        ctx: ctx.clone(),
        client,
        progress,
    };
    wait(runner, &mut report, &mut bounds, input, progress_rx).await
}

/// The reporter's check, before anything is written; an `Err` is the run's outcome.
async fn check<S: StatusReporter, F: Future<Output = Exit>>(
    reporter: &S,
    bounds: &mut Bounds<F>,
) -> Result<(), Outcome> {
    match bounds.race(reporter.check()).await {
        Ok(checked) => checked.map_err(|e| Outcome::error(&e)),
        Err(Cut::Deadline(timeout)) => Err(Outcome::error(&RunnerError::unavailable(timed_out(
            timeout,
            "checking the status reporter",
        )))),
        Err(Cut::Signal(exit)) => Err(Outcome::new(
            exit,
            format!("received {}; stopped while starting", signal_name(exit)),
        )),
    }
}

/// The start half of [`drive`]: starts the action within `bounds`, records it and reports
/// `Running`. An `Err` is the run's outcome: reported as the final status, except a refused
/// input (nothing was written: no status either).
async fn start<R, S, F>(
    runner: &mut R,
    report: &mut Report<'_, S>,
    bounds: &mut Bounds<F>,
    input: StartInput<R::Args>,
) -> Result<(), Outcome>
where
    R: ActionRunner,
    S: StatusReporter,
    F: Future<Output = Exit>,
{
    let activity = input.activity.clone();
    let out = match bounds.race(runner.start(input)).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == ErrorKind::InvalidInput => return Err(Outcome::error(&e)),
        Ok(Err(e)) => return Err(report.finish(Ending::error(&e)).await),
        Err(cut) => {
            let doing = match activity.get() {
                a if a.is_empty() => String::new(),
                a => format!(": {a}"),
            };
            let ending = Ending::cut(cut, &format!("while starting{doing}"));
            return Err(report.finish(ending).await);
        }
    };
    report.started(out).await;
    report.running().await?;
    tracing::info!(status = %report.status.runner_status, "action started; waiting for completion");
    Ok(())
}

/// The wait half of [`drive`]: waits for completion within `bounds`, writing the runner's
/// progress (`progress`) meanwhile; when the wait was cut short, lets the runner stop what it
/// started ([`cancel`]); reports the outcome.
async fn wait<R, S, F>(
    runner: &mut R,
    report: &mut Report<'_, S>,
    bounds: &mut Bounds<F>,
    input: WaitForCompletionInput,
    progress: watch::Receiver<Value>,
) -> Outcome
where
    R: ActionRunner,
    S: StatusReporter,
    F: Future<Output = Exit>,
{
    let mut progress = Throttle::new(progress);
    // In a block, so that the wait (which holds the runner) is dropped before `cancel`.
    let ending = {
        let wait = runner.wait_for_completion(input.clone());
        tokio::pin!(wait);
        let waited = loop {
            tokio::select! {
                r = bounds.race(&mut wait) => break r,
                p = progress.due() => {
                    report.progress(&p).await;
                    progress.written();
                }
            }
        };
        match waited {
            Ok(Ok(out)) => {
                report.set_runner_status(&out.status);
                Ending::completed(out)
            }
            Ok(Err(e)) => Ending::error(&e),
            Err(cut) => Ending::cut(cut, "waiting for completion"),
        }
    };
    if !ending.was_cut() {
        return report.finish(ending).await;
    }
    let ending = cancel(runner, input, ending).await;
    // The latest progress, with what `cancel` found (it reports through the same handle), is
    // the final status: a progress write still pending is not lost.
    let latest = progress.latest();
    if !latest.is_null() {
        report.set_runner_status(&latest);
    }
    report.finish(ending).await
}

/// A wait cut short: the runner may stop what it started (for example Argo's
/// `spec.shutdown`; by default it is left running), within its
/// [`cancel_timeout`](ActionRunner::cancel_timeout) (at most [`MAX_CANCEL_TIMEOUT`]). What it
/// says, or why it could not, is added to the message.
async fn cancel<R: ActionRunner>(
    runner: &mut R,
    input: WaitForCompletionInput,
    mut ending: Ending,
) -> Ending {
    let limit = runner.cancel_timeout().min(MAX_CANCEL_TIMEOUT);
    let message = ending.message;
    ending.message = match tokio::time::timeout(limit, runner.cancel(input)).await {
        Ok(Ok(Some(note))) => format!("{message}; {note}"),
        Ok(Ok(None)) => message,
        Ok(Err(e)) => format!("{message}; stopping the action failed: {e}"),
        Err(_) => format!("{message}; stopping the action timed out after {limit:?}"),
    };
    ending
}

/// What cuts a run short: the deadline of `RUNNER_TIMEOUT`, one for the check, the start and
/// the wait together, and the shutdown signal.
struct Bounds<F> {
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    shutdown: Pin<Box<F>>,
}

/// Why [`Bounds::race`] cut the work short.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// `RUNNER_TIMEOUT`, this long, elapsed.
    Deadline(Duration),
    /// The shutdown signal came, with the exit code it gave.
    Signal(Exit),
}

impl<F: Future<Output = Exit>> Bounds<F> {
    /// Bounds from now: `timeout` (none: no deadline) and `shutdown`.
    fn new(timeout: Option<Duration>, shutdown: F) -> Self {
        Bounds {
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            shutdown: Box::pin(shutdown),
        }
    }

    /// What `work` gives, unless the deadline passes or the signal comes first.
    async fn race<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Cut> {
        let (deadline, timeout) = (self.deadline, self.timeout.unwrap_or_default());
        let expired = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = work => Ok(r),
            () = expired => Err(Cut::Deadline(timeout)),
            exit = &mut self.shutdown => Err(Cut::Signal(exit)),
        }
    }
}

/// How the action ended, before the final report.
struct Ending {
    reason: Reason,
    succeeded: bool,
    /// The final message (any length: the report makes it one line).
    message: String,
    exit: Exit,
}

impl Ending {
    /// As the runner's outcome says.
    fn completed(out: WaitForCompletionOutput) -> Self {
        Ending {
            reason: Reason::Completed,
            exit: if out.succeeded {
                Exit::Succeeded
            } else {
                Exit::Failed
            },
            succeeded: out.succeeded,
            message: out.message,
        }
    }

    /// On an error of the runner's, with its exit code.
    fn error(e: &RunnerError) -> Self {
        Ending {
            reason: Reason::Error,
            succeeded: false,
            message: e.to_string(),
            exit: e.exit(),
        }
    }

    /// Cut short while `doing` (`while starting: ...`, `waiting for completion`).
    fn cut(cut: Cut, doing: &str) -> Self {
        let (reason, message, exit) = match cut {
            Cut::Deadline(timeout) => (
                Reason::DeadlineExceeded,
                timed_out(timeout, doing),
                Exit::Failed,
            ),
            Cut::Signal(exit) => (
                Reason::Cancelled,
                format!("received {}; stopped {doing}", signal_name(exit)),
                exit,
            ),
        };
        Ending {
            reason,
            succeeded: false,
            message,
            exit,
        }
    }

    /// Whether the action was left unfinished: cancelled, or out of time.
    fn was_cut(&self) -> bool {
        matches!(self.reason, Reason::Cancelled | Reason::DeadlineExceeded)
    }
}

fn timed_out(timeout: Duration, doing: &str) -> String {
    format!("timed out after {timeout:?} (RUNNER_TIMEOUT) {doing}")
}

/// The action's status as it is reported, and the Events recorded on the way.
struct Report<'a, S> {
    reporter: &'a S,
    status: ActionStatus,
    events: Events,
    /// `runnerStatus` as the start gave it: the wait's progress and outcome are set in it.
    start_status: Value,
}

impl<'a, S: StatusReporter> Report<'a, S> {
    /// The status of an action that is starting, for `runner` as `config` describes it.
    fn new(runner: &'static str, config: &Config, client: kube::Client, reporter: &'a S) -> Self {
        let ctx = &config.context;
        let hostname = config.process.hostname.clone();
        Report {
            reporter,
            status: ActionStatus {
                runner: runner.into(),
                context_name: ctx.name.clone(),
                phase: Phase::Running,
                reason: None,
                message: String::new(),
                dry_run: ctx.dry_run,
                started_at: now_rfc3339(),
                finished_at: None,
                runner_status: Value::Null,
            },
            events: Events::new(client, runner, hostname, ctx),
            start_status: Value::Null,
        }
    }

    /// The action started: its status, the objects its Events are also recorded on, and the
    /// `Started` (or `Adopted`) Event.
    async fn started(&mut self, out: StartOutput) {
        self.start_status = out.status;
        self.status.runner_status = self.start_status.clone();
        self.events.about(out.objects);
        let (story, verb) = if out.adopted {
            (Story::Adopted, "adopted the action its predecessor started")
        } else {
            (Story::Started, "started the action")
        };
        let status = &self.status;
        let note = format!("{} runner {verb} ({})", status.runner, status.context_name);
        self.events.record(story, &note).await;
    }

    /// Reports `Running`; an `Err` is the run's outcome.
    async fn running(&self) -> Result<(), Outcome> {
        self.reporter.report(&self.status).await.map_err(|e| {
            Outcome::new(
                e.exit(),
                format!("action started but reporting its status failed: {e}"),
            )
        })
    }

    /// Sets `runnerStatus` to the start status with the keys of `extra` (an object) set in it.
    fn set_runner_status(&mut self, extra: &Value) {
        self.status.runner_status = merged(&self.start_status, extra);
    }

    /// One progress write, bounded by [`PROGRESS_WRITE_TIMEOUT`]; a failure is only logged.
    async fn progress(&mut self, progress: &Value) {
        self.set_runner_status(progress);
        let written =
            tokio::time::timeout(PROGRESS_WRITE_TIMEOUT, self.reporter.report(&self.status));
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reporting progress failed; carrying on"),
            Err(_) => tracing::warn!(
                timeout = ?PROGRESS_WRITE_TIMEOUT,
                "reporting progress timed out; carrying on"
            ),
        }
    }

    /// Reports the final status and returns the ending's exit code and message; a failed report
    /// turns the exit code into the report's error's (unless a signal asked us to stop). The
    /// Event and the status report go out together (over HTTP/2, on the connection the wait
    /// used: see `client`), so the run ends one round trip after the action did.
    async fn finish(&mut self, ending: Ending) -> Outcome {
        let Ending {
            reason,
            succeeded,
            message,
            exit,
        } = ending;
        let status = &mut self.status;
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
        let status = &self.status;
        let report = final_report(self.reporter, status);
        let ((), reported) = tokio::join!(self.events.record(story, &status.message), report);
        match reported {
            Ok(()) => Outcome::new(exit, status.message.clone()),
            Err(e) => Outcome::new(
                // After a signal the signal's code stays.
                if matches!(exit, Exit::Terminated | Exit::Interrupted) {
                    exit
                } else {
                    e.exit()
                },
                format!("{}; reporting the status failed: {e}", status.message),
            ),
        }
    }
}

/// The final report of `status`; after a signal (`Cancelled`) it may take at most
/// [`REPORT_AFTER_SIGNAL_TIMEOUT`].
async fn final_report<S: StatusReporter>(
    reporter: &S,
    status: &ActionStatus,
) -> Result<(), RunnerError> {
    if status.reason != Some(Reason::Cancelled) {
        return reporter.report(status).await;
    }
    tokio::time::timeout(REPORT_AFTER_SIGNAL_TIMEOUT, reporter.report(status))
        .await
        .unwrap_or_else(|_| {
            Err(RunnerError::unavailable(format!(
                "timed out after {REPORT_AFTER_SIGNAL_TIMEOUT:?}"
            )))
        })
}

/// The runner's progress as it is written: at most once per [`PROGRESS_INTERVAL`]; a change
/// seen sooner waits for the interval's end (`pending`), and only the latest is written.
struct Throttle {
    rx: watch::Receiver<Value>,
    next_write: Instant,
    pending: bool,
    /// Whether the runner's handle may still send.
    open: bool,
}

impl Throttle {
    fn new(rx: watch::Receiver<Value>) -> Self {
        Throttle {
            rx,
            next_write: Instant::now(),
            pending: false,
            open: true,
        }
    }

    /// The progress to write, once it is due; never, when nothing is pending and the runner's
    /// handle is gone. Cancel-safe: dropped before it returns, it loses nothing.
    async fn due(&mut self) -> Value {
        loop {
            if self.pending {
                tokio::time::sleep_until(self.next_write).await;
                self.pending = false;
                return self.rx.borrow_and_update().clone();
            }
            if !self.open {
                return std::future::pending().await;
            }
            self.open = self.rx.changed().await.is_ok();
            self.pending = self.open;
        }
    }

    /// A write has ended: the next waits an interval.
    fn written(&mut self) {
        self.next_write = Instant::now() + PROGRESS_INTERVAL;
    }

    /// The latest progress, written or not.
    fn latest(&self) -> Value {
        self.rx.borrow().clone()
    }
}

/// `base` (an object, or null) with the keys of `extra` (an object) set in it.
fn merged(base: &Value, extra: &Value) -> Value {
    let mut out = match base {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    match extra {
        Value::Object(m) => out.extend(m.clone()),
        Value::Null => {}
        other => {
            out.insert("progress".into(), other.clone());
        }
    }
    if out.is_empty() && base.is_null() {
        Value::Null
    } else {
        Value::Object(out)
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

/// Writes `message` to the termination-message file (Kubernetes shows it in
/// `kubectl describe pod` and in the container status), only when the file already exists:
/// the kubelet creates it in a pod; elsewhere nothing is written.
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
    use crate::context::{ExecutionContext, KubernetesPlatform};
    use crate::error::ErrorKind;

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

    /// The scripted runner's own variable, `RUNNER_SCRIPTED_REFUSE`: when set, `prepare`
    /// refuses it.
    #[derive(Debug, Default, serde::Deserialize)]
    struct ScriptedConfig {
        scripted_refuse: Option<String>,
    }

    impl ActionRunner for Scripted {
        type Config = ScriptedConfig;
        type Args = serde_json::Value;

        fn name(&self) -> &'static str {
            "scripted"
        }

        fn prepare(
            &mut self,
            _: &Config,
            own: ScriptedConfig,
            args: &serde_json::Value,
        ) -> Result<(), RunnerError> {
            if let Some(value) = own.scripted_refuse {
                return Err(vars::invalid_value(
                    "RUNNER_SCRIPTED_REFUSE",
                    &value,
                    "is refused",
                ));
            }
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

    /// The common configuration, built by hand: `drive` reads no environment.
    fn config(timeout: Option<Duration>) -> Config {
        Config {
            input_manifest_path: "/in.yaml".into(),
            logger_dev_mode: false,
            termination_message_path: DEFAULT_TERMINATION_MESSAGE_PATH.into(),
            context: ExecutionContext {
                name: "act".into(),
                dry_run: false,
                timeout,
                platform: KubernetesPlatform {
                    namespace: "ns".into(),
                    service_account_name: None,
                    owner_reference: None,
                },
            },
            process: ProcessEnv::default(),
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
            &config(timeout),
            (serde_json::json!({}), InputDigest::new()),
            client(),
            reporter,
            shutdown,
        )
        .await
    }

    /// SIGTERM, `secs` seconds into the run.
    fn sigterm_after(secs: u64) -> Option<(Duration, Exit)> {
        Some((Duration::from_secs(secs), Exit::Terminated))
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
            let out = run(&mut r, &rec, None, sigterm_after(2)).await;
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
        let out = run(&mut r, &rec, None, sigterm_after(1)).await;
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
        let out = run(&mut r, &rec, None, sigterm_after(1)).await;
        assert_eq!(out.exit, Exit::Terminated);
    }

    #[test]
    fn read_input_errors_are_exit_2() {
        let dir = tempfile::tempdir().unwrap();
        let config = |manifest: &Path| {
            Config::from_vars(&[
                (
                    "RUNNER_INPUT_MANIFEST_PATH".to_string(),
                    manifest.display().to_string(),
                ),
                ("RUNNER_CONTEXT_NAME".into(), "act".into()),
                ("RUNNER_CONTEXT_PLATFORM_NAMESPACE".into(), "ns".into()),
            ])
            .unwrap()
        };
        let read = |manifest: &Path| {
            read_input(
                &mut runner(ok_start, succeeded),
                &config(manifest),
                ScriptedConfig::default(),
            )
        };
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "bad: true\n").unwrap();
        let e = read(&bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.exit()),
            (ErrorKind::InvalidInput, Exit::InvalidInput)
        );
        let missing = dir.path().join("missing.yaml");
        let e = read(&missing).unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(e.to_string().contains("missing.yaml"), "{e}");
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "fine: 1\n").unwrap();
        let (args, digest) = read(&good).unwrap();
        assert_eq!(args, serde_json::json!({"fine": 1}));
        // The same manifest is the same input; another text (even one that parses the same)
        // is another.
        let again = read(&good).unwrap();
        assert_eq!(digest.finish(), again.1.finish());
        std::fs::write(&good, "fine:  1\n").unwrap();
        let other = read(&good).unwrap();
        assert_ne!(digest.finish(), other.1.finish());
    }

    /// Both configurations are the caller's: the runner's own, read from variables as the
    /// Manager reads it, reaches `prepare`; the common one is `drive`'s.
    #[tokio::test(start_paused = true)]
    async fn the_configurations_are_handed_in() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.yaml");
        std::fs::write(&manifest, "fine: 1\n").unwrap();
        let vars = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
            [
                ("RUNNER_INPUT_MANIFEST_PATH", manifest.to_str().unwrap()),
                ("RUNNER_CONTEXT_NAME", "act"),
                ("RUNNER_CONTEXT_PLATFORM_NAMESPACE", "ns"),
                ("RUNNER_TIMEOUT", "5s"),
            ]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let refused = vars(&[("RUNNER_SCRIPTED_REFUSE", "yes")]);
        let (config, own) = (Config::from_vars(&refused).unwrap(), vars::read(&refused));
        let e = read_input(&mut runner(ok_start, succeeded), &config, own.unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: RUNNER_SCRIPTED_REFUSE=\"yes\" is refused"
        );

        let fine = vars(&[]);
        let (config, own) = (Config::from_vars(&fine).unwrap(), vars::read(&fine));
        let mut r = runner(ok_start, succeeded);
        r.wait_takes = Duration::from_secs(3600);
        let input = read_input(&mut r, &config, own.unwrap()).unwrap();
        let rec = Recorder::default();
        let out = drive(
            &mut r,
            &config,
            input,
            client(),
            &rec,
            std::future::pending(),
        )
        .await;
        assert_eq!(out.exit, Exit::Failed);
        assert_eq!(
            out.message,
            "timed out after 5s (RUNNER_TIMEOUT) waiting for completion; stopped it"
        );
    }
}
