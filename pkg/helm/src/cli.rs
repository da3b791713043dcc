//! Driving the helm CLI (Helm 3 or Helm 4) as a subprocess.
//!
//! Every call is an argument vector (never a shell string) run with `tokio::process`. Short
//! calls (`helm pull`, `helm status`, `helm template`, `helm version`) are killed when the run
//! is cancelled; the install or upgrade itself is a [`HelmChild`], which the runner stops the
//! way Helm expects to be stopped ([`HelmChild::stop`]: SIGTERM, then a grace period, then
//! SIGKILL), so that Helm records the release as `failed` rather than leaving it
//! `pending-install` or `pending-upgrade`. The cluster and storage are passed explicitly: `--kubeconfig`
//! when `KUBECONFIG` names one file (otherwise Helm reads `KUBECONFIG`, or the in-cluster
//! configuration, itself), `--namespace`, `--timeout`, and `HELM_DRIVER` /
//! `HELM_REPOSITORY_CACHE` in its environment. Values only ever reach Helm in files.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use action_runner::RunnerError;
use action_runner::error::one_line;

use crate::version::HelmVersion;

/// Redaction lives in [`crate::redact`]; these are re-exported here, where helm's output is
/// redacted, for the callers that name them so.
pub use crate::redact::{
    MIN_SECRET_LEN, REDACTED, Redactor, go_json_escape, go_quote, json_escape,
};

/// How to run helm.
#[derive(Debug, Clone)]
pub struct Helm {
    /// The helm binary.
    pub binary: PathBuf,
    /// `HELM_DRIVER`.
    pub driver: String,
    /// `HELM_REPOSITORY_CACHE`.
    pub repository_cache: PathBuf,
    /// `--kubeconfig`, when `KUBECONFIG` names a single file.
    pub kubeconfig: Option<PathBuf>,
    /// `--timeout`: the manifest's `timeout`, else `RUNNER_TIMEOUT`.
    pub timeout: Option<Duration>,
    /// More of Helm's configuration in its environment, set after (so over) the ones above:
    /// `HELM_REPOSITORY_CONFIG`, `HELM_REPOSITORY_CACHE` and `HELM_REGISTRY_CONFIG` pointing
    /// into the run's private scratch directory for a private chart source
    /// ([`crate::sources::RepositoryAccess::login`]). Paths only: never a credential.
    pub config_env: Vec<(&'static str, PathBuf)>,
    /// Applied to everything Helm prints before it is shown.
    pub redactor: Redactor,
}

/// Which exit code a failed Helm call maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The cluster refused the credentials or the request for good (exit 3).
    Cluster,
    /// The cluster could not be reached or was briefly unable to answer (exit 4: retrying may
    /// help).
    Unavailable,
    /// Anything else: the operation failed (exit 1).
    Failed,
}

/// Classifies Helm's error text. Helm exits 1 for every error, so its message is read: the
/// texts of [`Failure::Unavailable`] come from client-go and Go's `net` package (dial errors,
/// TLS, DNS), Helm's `Kubernetes cluster unreachable` and the API server's 503; those of
/// [`Failure::Cluster`] are the API server's answers to bad or insufficient credentials.
pub fn classify(message: &str) -> Failure {
    const UNAVAILABLE: [&str; 10] = [
        "kubernetes cluster unreachable",
        "connection refused",
        "no such host",
        "i/o timeout",
        "tls handshake timeout",
        "connection reset by peer",
        "network is unreachable",
        "no route to host",
        "unable to connect to the server",
        "the server is currently unable to handle the request",
    ];
    const CLUSTER: [&str; 3] = [
        "the server has asked for the client to provide credentials",
        "unauthorized",
        "is forbidden",
    ];
    let lower = message.to_ascii_lowercase();
    if CLUSTER.iter().any(|p| lower.contains(p)) {
        Failure::Cluster
    } else if UNAVAILABLE.iter().any(|p| lower.contains(p)) {
        Failure::Unavailable
    } else {
        Failure::Failed
    }
}

/// Helm's error output as one line: from the first `Error: ` line on (what helm printed before
/// it are warnings), `Error: ` prefixes dropped, Helm 4's structured log lines (`level=ERROR
/// msg=...`, Go's `log/slog` text format, which Helm 4 writes beside its error) and `Use
/// --debug` hints left out, lines joined with `; `. Without an `Error: ` line, every line but
/// those.
pub fn error_text(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines
        .iter()
        .position(|l| l.starts_with("Error: "))
        .unwrap_or(0);
    let kept: Vec<&str> = lines[from..]
        .iter()
        .copied()
        .filter(|l| !l.starts_with("Use --debug flag") && !is_slog_line(l))
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    one_line(&kept.join("\n"))
}

/// Whether `line` is a record of Go's `log/slog` text handler (`time=... level=... msg=...` or
/// `level=... msg=...`), as Helm 4 logs.
fn is_slog_line(line: &str) -> bool {
    let rest = match line.strip_prefix("time=") {
        Some(r) => r.split_once(' ').map_or("", |(_, r)| r),
        None => line,
    };
    rest.starts_with("level=") && rest.contains(" msg=")
}

impl Helm {
    /// The base command: binary, environment, no stdin, piped output, killed on drop.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.env("HELM_DRIVER", &self.driver)
            .env("HELM_REPOSITORY_CACHE", &self.repository_cache)
            .envs(self.config_env.iter().map(|(k, v)| (k, v)))
            .env_remove("HELM_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// The flags that point helm at the cluster: `--kubeconfig` (if any), `--namespace`, and
    /// `--timeout` (if [`timeout`](Self::timeout) is set, in milliseconds, a Go duration).
    pub fn cluster_args(&self, namespace: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(kc) = &self.kubeconfig {
            args.push("--kubeconfig".into());
            args.push(kc.clone().into());
        }
        args.push("--namespace".into());
        args.push(namespace.into());
        if let Some(t) = self.timeout {
            args.push("--timeout".into());
            args.push(format!("{}ms", t.as_millis().max(1)).into());
        }
        args
    }

    /// Runs `helm <args>` to its end; returns its standard output. `what` prefixes errors (for
    /// example `helm install`).
    ///
    /// # Errors
    /// As [`HelmChild::wait`]; [`ErrorKind::Cluster`](action_runner::error::ErrorKind) when helm
    /// cannot be started.
    pub async fn run(&self, what: &str, args: &[OsString]) -> Result<Vec<u8>, RunnerError> {
        self.spawn(what, args)?.wait().await
    }

    /// Runs `helm <args>` to its end with `input` written to its standard input, which is then
    /// closed: how a credential reaches helm (`--password-stdin`) without a command line or an
    /// environment variable that other processes could read (`/proc/<pid>/cmdline`,
    /// `/proc/<pid>/environ`), and without a file. A helm that exits before it has read all of
    /// `input` is not an error of its own: its exit status says what happened.
    ///
    /// # Errors
    /// As [`Helm::run`].
    pub async fn run_with_stdin(
        &self,
        what: &str,
        args: &[OsString],
        input: &[u8],
    ) -> Result<Vec<u8>, RunnerError> {
        let mut child = self.spawn_with(what, args, true)?;
        if let Some(mut stdin) = child.child.stdin.take() {
            // A broken pipe (helm exited early) shows in its exit status.
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stdin, input).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stdin).await;
        }
        child.wait().await
    }

    /// Starts `helm <args>` and returns the running process; its output is collected in the
    /// background, so the process never blocks on a full pipe. `what` prefixes errors.
    ///
    /// # Errors
    /// [`ErrorKind::Cluster`](action_runner::error::ErrorKind) when helm cannot be started.
    pub fn spawn(&self, what: &str, args: &[OsString]) -> Result<HelmChild, RunnerError> {
        self.spawn_with(what, args, false)
    }

    /// As [`Helm::spawn`], with a pipe to helm's standard input when `stdin` is set.
    fn spawn_with(
        &self,
        what: &str,
        args: &[OsString],
        stdin: bool,
    ) -> Result<HelmChild, RunnerError> {
        tracing::debug!(command = %self.redactor.redact(&format!("{} {}", self.binary.display(),
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "))), "running helm");
        let mut cmd = self.command();
        if stdin {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.args(args).spawn().map_err(|e| {
            RunnerError::cluster(format!("{what}: cannot run {}", self.binary.display())).because(e)
        })?;
        Ok(HelmChild {
            stdout: read_all(child.stdout.take(), Keep::Head(MAX_STDOUT_BYTES)),
            stderr: read_all(child.stderr.take(), Keep::Tail(MAX_STDERR_BYTES)),
            child,
            what: what.to_string(),
            redactor: self.redactor.clone(),
            outcome: None,
        })
    }

    /// The version of the helm binary: from its Go build information when it has it
    /// ([`crate::version::from_build_info`], no process started), else `helm version --template
    /// {{.Version}}`, parsed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) naming
    /// `RUNNER_HELM_BINARY_PATH` when helm cannot be run or reports a version this runner does
    /// not drive (see [`HelmVersion::parse`]).
    pub async fn version(&self) -> Result<HelmVersion, RunnerError> {
        if let Some(v) = crate::version::from_build_info(&self.binary) {
            return Ok(v);
        }
        let at = || format!("RUNNER_HELM_BINARY_PATH={}", self.binary.display());
        let out = self
            .run(
                "helm version",
                &["version".into(), "--template".into(), "{{.Version}}".into()],
            )
            .await
            .map_err(|e| RunnerError::invalid_input(format!("{}: {e}", at())))?;
        HelmVersion::parse(&String::from_utf8_lossy(&out))
            .map_err(|e| RunnerError::invalid_input(format!("{}: {e}", at())).because(e))
    }
}

/// How long helm may take to stop after SIGTERM before it is killed: 12 s. Helm's `install` and
/// `upgrade` catch SIGTERM, cancel their context and record the release as `failed`
/// (`helm.sh/helm/v4` `pkg/cmd/install.go` and `upgrade.go`, `signal.Notify`, then
/// `failRelease` in `pkg/action`; the same in Helm 3), which takes one storage write. 12 s plus
/// the runner's own final report ([`REPORT_AFTER_SIGNAL_TIMEOUT`](action_runner::manager::REPORT_AFTER_SIGNAL_TIMEOUT),
/// 10 s) stay within the 30 s Kubernetes grants by default after SIGTERM
/// (`terminationGracePeriodSeconds`).
pub const STOP_GRACE: Duration = Duration::from_secs(12);

/// A running helm process (see [`Helm::spawn`]). Dropping it kills the process.
pub struct HelmChild {
    child: tokio::process::Child,
    stdout: tokio::task::JoinHandle<Captured>,
    stderr: tokio::task::JoinHandle<Captured>,
    what: String,
    redactor: Redactor,
    /// Set once the process has exited and its output was read.
    outcome: Option<Result<Vec<u8>, RunnerError>>,
}

impl std::fmt::Debug for HelmChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HelmChild({}, pid {:?})", self.what, self.child.id())
    }
}

/// How [`HelmChild::stop`] ended the process.
#[derive(Debug)]
pub enum Stopped {
    /// It had already exited; its outcome.
    AlreadyExited(Result<Vec<u8>, RunnerError>),
    /// It exited within the grace period after SIGTERM; its outcome (Helm's error, usually
    /// `context canceled`).
    Terminated(Result<Vec<u8>, RunnerError>),
    /// It did not exit within the grace period and was killed (SIGKILL).
    Killed,
}

impl HelmChild {
    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the process to exit; returns its standard output. Cancel-safe: dropping the
    /// future leaves the process running and this value able to wait again, or to
    /// [`stop`](Self::stop) it.
    ///
    /// # Errors
    /// [`ErrorKind::Cluster`](action_runner::error::ErrorKind) when the cluster refuses the
    /// credentials, [`ErrorKind::Unavailable`](action_runner::error::ErrorKind) when it cannot
    /// be reached, [`ErrorKind::Failed`](action_runner::error::ErrorKind) for other failures;
    /// the message is Helm's, redacted, after `what`.
    pub async fn wait(&mut self) -> Result<Vec<u8>, RunnerError> {
        if let Some(done) = &self.outcome {
            return clone_outcome(done);
        }
        let status = self.child.wait().await.map_err(|e| {
            RunnerError::failed(format!("{}: waiting for helm failed", self.what)).because(e)
        })?;
        let stdout = (&mut self.stdout).await.unwrap_or_default();
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        let outcome = interpret(
            &self.what,
            &self.redactor,
            status,
            stdout.bytes,
            &stderr.bytes,
        )
        .and_then(|out| match stdout.dropped {
            0 => Ok(out),
            _ => Err(RunnerError::failed(format!(
                "{}: helm printed more than {MAX_STDOUT_BYTES} bytes on its standard output, \
                     the most read",
                self.what
            ))),
        });
        let copy = clone_outcome(&outcome);
        self.outcome = Some(outcome);
        copy
    }

    /// Stops the process as Helm expects: SIGTERM, then up to `grace` for it to exit (Helm
    /// records the release as `failed` meanwhile), then SIGKILL.
    pub async fn stop(&mut self, grace: Duration) -> Stopped {
        if self.outcome.is_some() || matches!(self.child.try_wait(), Ok(Some(_))) {
            return Stopped::AlreadyExited(self.wait().await);
        }
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // The child is not reaped before `wait` returns, so the pid is still its own.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(outcome) => Stopped::Terminated(outcome),
            Err(_) => {
                let _ = self.child.kill().await;
                Stopped::Killed
            }
        }
    }
}

/// A copy of an outcome (errors keep their kind and message; the cause is not cloneable, and is
/// already part of the message).
fn clone_outcome(o: &Result<Vec<u8>, RunnerError>) -> Result<Vec<u8>, RunnerError> {
    match o {
        Ok(out) => Ok(out.clone()),
        Err(e) => Err(RunnerError::failed(e.to_string()).with_kind(e.kind())),
    }
}

/// The most of helm's standard output kept: [`crate::storage::MAX_RELEASE_JSON_BYTES`] (32 MiB;
/// `helm install -o json` prints the release's JSON, which Helm also stores). More is drained and
/// the call fails.
pub const MAX_STDOUT_BYTES: usize = crate::storage::MAX_RELEASE_JSON_BYTES as usize;

/// The most of helm's standard error kept: its last 64 KiB, from the first line break in them
/// (so that a secret cut in two is never shown half, which the [`Redactor`] could not recognize).
/// Helm's error is its last line; warnings before it may be dropped. The rest is drained, so helm
/// never blocks on a full pipe.
pub const MAX_STDERR_BYTES: usize = 64 * 1024;

/// What is kept of a pipe.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// The first bytes, at most this many.
    Head(usize),
    /// The last bytes, at most this many, from a line's start.
    Tail(usize),
}

/// A pipe's content as kept, and how many bytes were read and dropped.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: u64,
}

/// Reads a pipe to its end in the background, keeping what `keep` says.
fn read_all<R>(pipe: Option<R>, keep: Keep) -> tokio::task::JoinHandle<Captured>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut out = Captured::default();
        let Some(mut p) = pipe else { return out };
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let n = match tokio::io::AsyncReadExt::read(&mut p, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            out.bytes.extend_from_slice(&chunk[..n]);
            match keep {
                Keep::Head(max) if out.bytes.len() > max => out.drop_from(max),
                // Cut once twice the limit is held, so that cutting costs little.
                Keep::Tail(max) if out.bytes.len() > 2 * max => {
                    out.drop_until(out.bytes.len() - max)
                }
                _ => {}
            }
        }
        if let Keep::Tail(max) = keep
            && (out.dropped > 0 || out.bytes.len() > max)
        {
            out.drop_until(out.bytes.len().saturating_sub(max));
            // No line break at all: nothing is kept rather than a line's end.
            let line_start = out
                .bytes
                .iter()
                .position(|b| *b == b'\n')
                .map_or(out.bytes.len(), |i| i + 1);
            out.drop_until(line_start);
        }
        out
    })
}

impl Captured {
    /// Drops the bytes from `at` on.
    fn drop_from(&mut self, at: usize) {
        self.dropped += (self.bytes.len() - at) as u64;
        self.bytes.truncate(at);
    }

    /// Drops the bytes before `at`.
    fn drop_until(&mut self, at: usize) {
        self.dropped += at as u64;
        self.bytes.drain(..at);
    }
}

/// A finished helm call: its standard output on success, else its error classified
/// ([`classify`]) and redacted.
fn interpret(
    what: &str,
    redactor: &Redactor,
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: &[u8],
) -> Result<Vec<u8>, RunnerError> {
    let stderr = redactor.redact(&String::from_utf8_lossy(stderr));
    if status.success() {
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(helm = %line, "{what}: helm said");
        }
        return Ok(stdout);
    }
    let sigkill = nix::sys::signal::Signal::SIGKILL as i32;
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(sigkill) {
        return Err(RunnerError::killed(killed_message(what, oom_kills())));
    }
    let text = match error_text(&stderr) {
        t if t.is_empty() => format!("helm exited with {status}"),
        t => t,
    };
    Err(match classify(&text) {
        Failure::Cluster => RunnerError::cluster(format!("{what}: {text}")),
        Failure::Unavailable => RunnerError::unavailable(format!("{what}: {text}")),
        Failure::Failed => RunnerError::failed(format!("{what}: {text}")),
    })
}

/// What to say of helm killed by SIGKILL (not by the runner: [`HelmChild::stop`] does not
/// interpret the process it kills), given the OOM kills the container's memory cgroup recorded.
fn killed_message(what: &str, oom_kills: Option<u64>) -> String {
    match oom_kills {
        Some(n) if n > 0 => format!(
            "{what}: helm was killed by SIGKILL: the kernel's OOM killer ({n} OOM kill(s) \
             recorded in this container's memory cgroup); the container's memory limit is too \
             low for this chart, or something else in it grew"
        ),
        _ => format!(
            "{what}: helm was killed by SIGKILL (by another process or the kernel's OOM killer; \
             this container's memory cgroup could not say which)"
        ),
    }
}

/// The cgroup files that count OOM kills in the container's own memory cgroup, as a container
/// sees them (its cgroup is mounted at `/sys/fs/cgroup`): cgroup v2's `memory.events` and
/// cgroup v1's `memory.oom_control` (Linux `Documentation/admin-guide/cgroup-v2.rst` and
/// `cgroup-v1/memory.rst`), each with a line `oom_kill N`.
const OOM_COUNTERS: [&str; 2] = [
    "/sys/fs/cgroup/memory.events",
    "/sys/fs/cgroup/memory/memory.oom_control",
];

/// The number of OOM kills the container's memory cgroup recorded; `None` when no counter can
/// be read. Reads at most 4 KiB of each file.
fn oom_kills() -> Option<u64> {
    OOM_COUNTERS.iter().find_map(|path| {
        let mut text = String::new();
        let file = std::fs::File::open(path).ok()?;
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 4096), &mut text).ok()?;
        oom_kill_count(&text)
    })
}

/// The `oom_kill N` line's number in a cgroup memory file's text.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == "oom_kill").then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A helm stand-in, a shell script: `term` behaves as Helm on SIGTERM (records, prints
    /// Helm's error, exits 1); `ignore` ignores SIGTERM. Both create `ready` once their trap is
    /// set, then wait.
    fn fake_helm(dir: &std::path::Path, on_term: &str) -> Helm {
        let trap = match on_term {
            "term" => {
                "trap 'echo stopped > \"$D/stopped\"; echo \"Error: INSTALLATION FAILED: context canceled\" >&2; exit 1' TERM"
            }
            _ => "trap '' TERM",
        };
        let d = dir.display();
        script_helm(
            dir,
            &format!("D={d}\n{trap}\ntouch \"$D/ready\"\nwhile :; do sleep 0.05; done"),
        )
    }

    /// A [`fake_helm`] (`on_term`) spawned as `what` in a directory of its own, once its trap
    /// is set: the directory and the process.
    async fn spawned(on_term: &str, what: &str) -> (tempfile::TempDir, HelmChild) {
        let dir = tempfile::tempdir().unwrap();
        let child = fake_helm(dir.path(), on_term).spawn(what, &[]).unwrap();
        while !dir.path().join("ready").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (dir, child)
    }

    /// SIGTERM reaches helm, which stops on its own within the grace period; its error is
    /// kept.
    #[tokio::test]
    async fn stop_forwards_sigterm_and_keeps_helms_error() {
        let (dir, mut child) = spawned("term", "helm install ns/x").await;
        // A wait cut short (as the Manager does on SIGTERM) leaves the process to stop.
        let cut = tokio::time::timeout(Duration::from_millis(1), child.wait()).await;
        assert!(cut.is_err(), "the fake helm never exits by itself");
        match child.stop(Duration::from_secs(3600)).await {
            Stopped::Terminated(Err(e)) => {
                assert_eq!(
                    e.to_string(),
                    "helm install ns/x: INSTALLATION FAILED: context canceled"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(dir.path().join("stopped").exists(), "the trap ran");
        assert!(matches!(
            child.stop(Duration::from_secs(1)).await,
            Stopped::AlreadyExited(Err(_))
        ));
    }

    /// A helm stand-in running `body` (a shell script), in `dir`.
    pub(crate) fn script_helm(dir: &std::path::Path, body: &str) -> Helm {
        let script = dir.join("helm");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        Helm {
            binary: script,
            driver: "secrets".into(),
            repository_cache: dir.into(),
            kubeconfig: None,
            timeout: None,
            config_env: Vec::new(),
            redactor: Redactor::default(),
        }
    }

    /// helm killed by SIGKILL from outside (the OOM killer's signal) is [`ErrorKind::Killed`]
    /// (exit 137, retried like a crash), not the action's failure; the OOM kill count of a
    /// cgroup file is read from either version's format.
    #[tokio::test]
    async fn helm_killed_by_sigkill_is_a_crash_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let helm = script_helm(dir.path(), "echo 'half a line' >&2\nkill -9 $$");
        let e = helm
            .spawn("helm install ns/x", &[])
            .unwrap()
            .wait()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), action_runner::error::ErrorKind::Killed, "{e}");
        assert_eq!(e.exit(), action_runner::Exit::Killed);
        assert!(
            e.to_string()
                .starts_with("helm install ns/x: helm was killed by SIGKILL")
        );
        let v2 = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(oom_kill_count(v2), Some(1));
        assert_eq!(oom_kill_count(v1), Some(2));
        assert_eq!(oom_kill_count("oom 1\n"), None);
        assert!(killed_message("w", Some(2)).contains("OOM killer (2 OOM kill(s)"));
        assert!(killed_message("w", Some(0)).contains("could not say which"));
    }

    /// Helm's output is drained to its end but only its bounds are kept: the last 64 KiB of
    /// standard error (from a line's start), and standard output up to its limit, beyond which
    /// the call fails.
    #[tokio::test]
    async fn helms_output_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let helm = script_helm(
            dir.path(),
            "yes 'WARNING: a long-winded warning' | head -n 100000 >&2\n\
             echo 'Error: the real reason' >&2\nexit 1",
        );
        let mut child = helm.spawn("helm install ns/x", &[]).unwrap();
        let e = child.wait().await.unwrap_err();
        assert_eq!(e.to_string(), "helm install ns/x: the real reason");

        let stderr = read_all(
            Some(std::io::Cursor::new(b"0123456789\nabcdef\nlast\n".to_vec())),
            Keep::Tail(9),
        )
        .await
        .unwrap();
        assert_eq!(stderr.bytes, b"last\n");
        assert_eq!(stderr.dropped, 18);
        let stderr = read_all(Some(std::io::Cursor::new(vec![b'x'; 100])), Keep::Tail(9))
            .await
            .unwrap();
        assert!(stderr.bytes.is_empty(), "no line's start: nothing kept");

        let helm = script_helm(dir.path(), "head -c 40000000 /dev/zero\nexit 0");
        let e = helm.run("helm template", &[]).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "helm template: helm printed more than 33554432 bytes on its standard output, the \
             most read"
        );
    }

    /// A helm that ignores SIGTERM is killed once the grace period is over.
    #[tokio::test]
    async fn stop_kills_after_the_grace_period() {
        let (_dir, mut child) = spawned("ignore", "helm upgrade ns/x").await;
        assert!(matches!(
            child.stop(Duration::from_millis(100)).await,
            Stopped::Killed
        ));
        assert!(child.id().is_none(), "reaped");
    }

    /// A helm stand-in: `reads` copies its standard input to `stdin` beside it and prints its
    /// arguments and environment; otherwise it fails at once without reading anything.
    fn stdin_helm(dir: &std::path::Path, reads: bool) -> Helm {
        let body = if reads {
            format!("cat > {}/stdin\necho \"$@\"\nenv", dir.display())
        } else {
            "echo 'Error: boom' >&2\nexit 1".to_string()
        };
        let mut helm = script_helm(dir, &body);
        helm.config_env = vec![("HELM_REGISTRY_CONFIG", dir.join("registry.json"))];
        helm
    }

    /// The input reaches helm's standard input byte for byte, and neither its arguments nor
    /// its environment; `config_env` is in its environment.
    #[tokio::test]
    async fn run_with_stdin_writes_the_input_and_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let helm = stdin_helm(dir.path(), true);
        let secret = "s3cret pass\nword";
        let out = helm
            .run_with_stdin("helm registry login", &["login".into()], secret.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("stdin")).unwrap(),
            secret
        );
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("s3cret"), "{out}");
        let config = format!(
            "HELM_REGISTRY_CONFIG={}",
            dir.path().join("registry.json").display()
        );
        assert!(out.lines().any(|l| l == config), "{out}");

        // A helm that fails before reading (more than a pipe holds): its error, not the
        // pipe's.
        let helm = stdin_helm(dir.path(), false);
        let e = helm
            .run_with_stdin("helm repo add", &[], &vec![b'x'; 1 << 20])
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "helm repo add: boom");
    }

    #[test]
    fn classifies_helm_errors() {
        for (msg, want) in [
            (
                "INSTALLATION FAILED: Kubernetes cluster unreachable: Get \"https://127.0.0.1:1/version\": dial tcp 127.0.0.1:1: connect: connection refused",
                Failure::Unavailable,
            ),
            (
                "INSTALLATION FAILED: secrets is forbidden: User \"x\" cannot list resource",
                Failure::Cluster,
            ),
            (
                "INSTALLATION FAILED: YAML parse error on x/templates/a.yaml",
                Failure::Failed,
            ),
            (
                "chart \"c\" version \"9.9.9\" not found in http://127.0.0.1:1 repository",
                Failure::Failed,
            ),
        ] {
            assert_eq!(classify(msg), want, "{msg}");
        }
    }

    /// Helm 4 logs its error (slog) before printing it; Helm 3 prints warnings before it.
    #[test]
    fn error_text_of_helm_4_and_3() {
        let helm4 = "level=ERROR msg=\"cluster reachability check failed: kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused\"\n\
            Error: INSTALLATION FAILED: cluster reachability check failed: kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused\n";
        let text = error_text(helm4);
        assert_eq!(
            text,
            "INSTALLATION FAILED: cluster reachability check failed: kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert_eq!(classify(&text), Failure::Unavailable);
        let helm3 = "WARNING: Kubernetes configuration file is group-readable. This is insecure.\n\
            Error: UPGRADE FAILED: Kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused\n";
        assert_eq!(
            error_text(helm3),
            "UPGRADE FAILED: Kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused"
        );
        assert_eq!(
            error_text("time=2026-11-22T10:00:00Z level=WARN msg=x\nsomething broke\n"),
            "something broke"
        );
    }

    #[test]
    fn error_text_is_one_line() {
        assert_eq!(
            error_text(
                "Error: INSTALLATION FAILED: a\nb\nUse --debug flag to render out invalid YAML\n"
            ),
            "INSTALLATION FAILED: a; b"
        );
    }
}
