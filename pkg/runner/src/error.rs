//! Errors of the framework and of runners, and the exit code each one maps to.

use std::process::ExitCode;

/// Exit codes of a runner process; stable across releases. They split what retrying cannot help
/// (1, 2, 3: a Job's `podFailurePolicy` fails the Job at once) from what it may help (4, and 137
/// like a crash: counted against `backoffLimit` and retried). [`Exit::ALL`] with [`Exit::meaning`] and
/// [`Exit::retrying`] is the table `--help` prints and the README shows (a test checks that the
/// README's table is this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0: the action succeeded.
    Succeeded = 0,
    /// 1: the action ran and failed, or timed out.
    Failed = 1,
    /// 2: invalid input or configuration; nothing was written to the cluster.
    InvalidInput = 2,
    /// 3: the cluster refused for good (retrying cannot help).
    Cluster = 3,
    /// 4: the cluster was unreachable or answered with a transient error (retrying may help).
    Unavailable = 4,
    /// 130: SIGINT.
    Interrupted = 130,
    /// 137: a process the action ran (helm) was killed by SIGKILL, which the kernel's OOM
    /// killer sends when the container reaches its memory limit: the attempt ended as if the
    /// runner itself had been killed (a container killed by SIGKILL exits 128 + 9).
    Killed = 137,
    /// 143: SIGTERM.
    Terminated = 143,
}

impl Exit {
    /// Every exit code, in increasing order.
    pub const ALL: [Exit; 8] = [
        Exit::Succeeded,
        Exit::Failed,
        Exit::InvalidInput,
        Exit::Cluster,
        Exit::Unavailable,
        Exit::Interrupted,
        Exit::Killed,
        Exit::Terminated,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code says about the run (Markdown: code spans only), as the README's table
    /// says it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Succeeded => "the action succeeded",
            Exit::Failed => "the action ran and failed, or `RUNNER_TIMEOUT` elapsed",
            Exit::InvalidInput => {
                "invalid input or configuration; nothing was written to the cluster (also: the \
                 status ConfigMap is missing, the Workflow name is taken by an object this runner \
                 did not create, or the API server refused the object: `400`, `422`, `413`, or \
                 etcd's \"request is too large\", with the limit named)"
            }
            Exit::Cluster => {
                "the cluster refused for good: no kubeconfig, unauthorized, forbidden (the message \
                 names the verb and resource), not found"
            }
            Exit::Unavailable => {
                "the cluster could not be reached or answered with a transient error: connection \
                 refused or reset, timeouts, `408`, `409` left after the client's retries, `429`, \
                 `5xx`"
            }
            Exit::Interrupted => "SIGINT",
            Exit::Killed => {
                "helm was killed by SIGKILL mid-run, as the kernel's OOM killer does at the \
                 container's memory limit (the message says when the container recorded an OOM \
                 kill): the attempt ended like a crash; raise the Job's memory limit if it repeats"
            }
            Exit::Terminated => {
                "SIGTERM: the runner stops waiting, reports `Cancelled` (within 10 s; helm-runner \
                 first gives helm up to 12 s to stop and record the release `failed`) and exits"
            }
        }
    }

    /// Whether running the action again can help: `cannot help` (1, 2, 3), `may help` (4),
    /// or, for 137 and 143, that the Jobs in `deploy/` count it against `backoffLimit` and
    /// retry; `None` for success and SIGINT.
    pub fn retrying(self) -> Option<&'static str> {
        match self {
            Exit::Failed | Exit::InvalidInput | Exit::Cluster => Some("cannot help"),
            Exit::Unavailable => Some("may help"),
            Exit::Killed | Exit::Terminated => Some("counted against `backoffLimit`"),
            Exit::Succeeded | Exit::Interrupted => None,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The cause of a [`RunnerError`]: any error, kept as it is.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure a [`RunnerError`] is; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input manifest or the configuration is invalid (exit 2). Only before anything was
    /// written to the cluster.
    InvalidInput,
    /// The action ran and failed (exit 1).
    Failed,
    /// The cluster refused for good: forbidden, unauthorized, not found (exit 3).
    Cluster,
    /// The cluster could not be reached or answered with a transient error (exit 4).
    Unavailable,
    /// A process the action ran was killed by SIGKILL, usually the OOM killer (exit 137).
    Killed,
}

/// An error a runner (or the framework) returns: its [`ErrorKind`], what was being done (the
/// context, for example `create Workflow ns/name`) and the error that caused it, kept as its
/// [`source`](std::error::Error::source). Its text (`Display`) is one line, the context and then
/// the cause's chain, shown to the user: it must name the variable, file or field at fault and
/// must never contain secrets (Helm values, tokens).
#[derive(Debug)]
pub struct RunnerError {
    kind: ErrorKind,
    context: String,
    source: Option<Source>,
}

impl RunnerError {
    /// An error of `kind` saying `context`, with no cause.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        RunnerError {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// [`ErrorKind::InvalidInput`] (exit 2).
    pub fn invalid_input(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, context)
    }

    /// [`ErrorKind::Failed`] (exit 1).
    pub fn failed(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, context)
    }

    /// [`ErrorKind::Cluster`] (exit 3).
    pub fn cluster(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cluster, context)
    }

    /// [`ErrorKind::Unavailable`] (exit 4).
    pub fn unavailable(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, context)
    }

    /// The same error caused by `source`.
    #[must_use]
    pub fn because(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The same error of another kind (for example a failed download of a chart is the
    /// action's failure, not the cluster's).
    #[must_use]
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What was being done, without the cause.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// [`ErrorKind::Killed`] (exit 137).
    pub fn killed(context: impl Into<String>) -> Self {
        Self::new(ErrorKind::Killed, context)
    }

    /// The process exit code for this error.
    pub fn exit(&self) -> Exit {
        match self.kind {
            ErrorKind::InvalidInput => Exit::InvalidInput,
            ErrorKind::Failed => Exit::Failed,
            ErrorKind::Cluster => Exit::Cluster,
            ErrorKind::Unavailable => Exit::Unavailable,
            ErrorKind::Killed => Exit::Killed,
        }
    }

    /// Classifies an error from the Kubernetes API met while doing `what` (for example
    /// `create Workflow default/x`), keeping it as the cause:
    /// - `400 BadRequest`, `422 Invalid` and `413 RequestEntityTooLarge` are about the object
    ///   sent (the API server wrote nothing): [`ErrorKind::InvalidInput`]; so is etcd's
    ///   "request is too large" behind a `500` (an object over etcd's 1.5 MiB request limit,
    ///   `--max-request-bytes`), whose reason the API server leaves empty;
    /// - `408`, `409` (a conflict left after the client's own retries), `429` and `5xx`, and
    ///   no answer at all (connection refused or reset, timeouts): [`ErrorKind::Unavailable`];
    /// - the rest (`401`, `403`, `404`, ...): [`ErrorKind::Cluster`]. The API server's message
    ///   is kept: for `403 Forbidden` it names the verb and resource.
    pub fn from_kube(what: impl Into<String>, err: kube::Error) -> Self {
        let kind = match &err {
            kube::Error::Api(s) if matches!(s.code, 400 | 413 | 422) => ErrorKind::InvalidInput,
            kube::Error::Api(s) if s.code == 500 && s.message.contains("request is too large") => {
                ErrorKind::InvalidInput
            }
            kube::Error::Api(s) if matches!(s.code, 408 | 409 | 429) || s.code >= 500 => {
                ErrorKind::Unavailable
            }
            kube::Error::Api(_) => ErrorKind::Cluster,
            kube::Error::HyperError(_) | kube::Error::Service(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Cluster,
        };
        let mut what = what.into();
        if let kube::Error::Api(s) = &err
            && (s.code == 413 || (s.code == 500 && s.message.contains("request is too large")))
        {
            what.push_str(
                ": the object is too large (the API server takes requests of at most 3 MiB and \
                 etcd stores objects of at most 1.5 MiB)",
            );
        }
        Self::new(kind, what).because(ApiError(err))
    }
}

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            None => f.write_str(&one_line(&self.context)),
            Some(s) => {
                let cause = one_line(&error_chain(s.as_ref()));
                if self.context.is_empty() {
                    f.write_str(&cause)
                } else {
                    write!(f, "{}: {cause}", one_line(&self.context))
                }
            }
        }
    }
}

impl std::error::Error for RunnerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// A [`kube::Error`] shown the way the API server put it: for an API answer, its message, code
/// and reason (`workflows.argoproj.io is forbidden: ... (403 Forbidden)`); otherwise its chain of
/// causes. The error itself is kept as the source.
#[derive(Debug)]
pub struct ApiError(pub kube::Error);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            kube::Error::Api(s) if s.reason.is_empty() => {
                write!(f, "{} ({})", one_line(&s.message), s.code)
            }
            kube::Error::Api(s) => write!(f, "{} ({} {})", one_line(&s.message), s.code, s.reason),
            other => f.write_str(&one_line(&error_chain(other))),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The chain is already in the text; the kube error is reached with `.0`.
        None
    }
}

/// `err` and its sources, joined with `: ` (for example `ServiceError: client error (Connect):
/// tcp connect error: Connection refused (os error 111)`), without repeating a source whose text
/// its parent already includes.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Folds a possibly multi-line message into one line (newlines become `; `).
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn every_exit_code_once_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130, 137, 143]);
        for e in Exit::ALL {
            assert!(!e.meaning().is_empty(), "{e:?}");
            assert_eq!(ExitCode::from(e), ExitCode::from(e.code()));
        }
        // Each kind of error exits with a code of the table.
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::Failed,
            ErrorKind::Cluster,
            ErrorKind::Unavailable,
            ErrorKind::Killed,
        ] {
            assert!(Exit::ALL.contains(&RunnerError::new(kind, "x").exit()));
        }
    }

    #[test]
    fn kube_errors_are_classified_by_whether_retrying_can_help() {
        let kind = |code, reason, message| {
            RunnerError::from_kube("create Workflow ns/x", api(code, reason, message)).kind()
        };
        assert_eq!(kind(422, "Invalid", "spec.x: bad"), ErrorKind::InvalidInput);
        assert_eq!(kind(400, "BadRequest", "bad"), ErrorKind::InvalidInput);
        assert_eq!(
            kind(413, "RequestEntityTooLarge", "too big"),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(500, "", "etcdserver: request is too large"),
            ErrorKind::InvalidInput
        );
        assert_eq!(kind(403, "Forbidden", "forbidden"), ErrorKind::Cluster);
        assert_eq!(kind(404, "NotFound", "not found"), ErrorKind::Cluster);
        assert_eq!(kind(401, "Unauthorized", "no"), ErrorKind::Cluster);
        for code in [408, 409, 429, 500, 503, 504] {
            assert_eq!(kind(code, "x", "y"), ErrorKind::Unavailable, "{code}");
        }
    }

    #[test]
    fn the_text_is_the_context_then_the_cause_and_the_cause_is_kept() {
        let e = RunnerError::from_kube(
            "create Workflow ns/x",
            api(
                403,
                "Forbidden",
                "workflows is forbidden: User \"u\" cannot create",
            ),
        );
        assert_eq!(
            e.to_string(),
            "create Workflow ns/x: workflows is forbidden: User \"u\" cannot create (403 Forbidden)"
        );
        assert_eq!(e.exit(), Exit::Cluster);
        let source = std::error::Error::source(&e).unwrap();
        let kept = source.downcast_ref::<ApiError>().unwrap();
        assert!(matches!(&kept.0, kube::Error::Api(s) if s.code == 403));

        let e = RunnerError::from_kube(
            "create Workflow ns/x",
            api(500, "", "etcdserver: request is too large"),
        );
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(e.to_string().contains("at most 1.5 MiB"), "{e}");

        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = RunnerError::invalid_input("input manifest m: cannot read").because(io);
        assert_eq!(e.to_string(), "input manifest m: cannot read: no such file");
        assert!(std::error::Error::source(&e).is_some());
    }
}
