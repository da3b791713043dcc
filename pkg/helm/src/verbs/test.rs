//! `helm test` after a successful install or upgrade (the manifest's `test`), as Flux's
//! helm-controller runs it (`internal/action/test.go` of `github.com/fluxcd/helm-controller`):
//! the chart's test hooks (`helm.sh/hook: test`) run as pods; a failed one fails the action
//! (exit 1) unless `ignoreFailures`.
//!
//! What the runner reports comes from what Helm stored, not from helm's text: after `helm test`
//! the release's newest record holds each test hook's last run (`hooks[].last_run.phase`). For
//! each failed test pod the runner reads its exit code and its last log lines from the API
//! (`pods/log`), redacted, so that the message says why without anyone reading the pod.

use std::ffi::OsString;

use action_runner::RunnerError;
use action_runner::error::ErrorKind;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::Helm;
use crate::input;
use crate::storage;

/// `test` of the install and upgrade manifest.
///
/// ```yaml
/// test:
///   enable: true              # run `helm test` after a successful install or upgrade
///   filter: [name=smoke]      # --filter, each as given (Helm's syntax: name=x, !name=x)
///   timeout: 2m               # --timeout of the tests, a Go duration (default: the operation's)
///   ignoreFailures: false     # a failed test leaves the action successful (said in the status)
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TestInput {
    /// Run the tests. Default `false`.
    #[serde(default)]
    pub enable: bool,
    /// `--filter` arguments, one per entry, as Helm takes them (`name=smoke`, `!name=slow`).
    #[serde(default, deserialize_with = "input::one_or_many")]
    pub filter: Vec<String>,
    /// `--timeout` of `helm test`: a Go duration; empty: the operation's timeout.
    #[serde(default)]
    pub timeout: String,
    /// A failed test does not fail the action (the status still says which failed).
    #[serde(default)]
    pub ignore_failures: bool,
}

/// How many log lines of a failed test pod the message carries, at most.
const LOG_LINES: i64 = 5;
/// How many bytes of a failed test pod's log are read, at most.
const LOG_BYTES: i64 = 1024;
/// How many failed tests the message describes, at most (the status lists them all).
const DESCRIBED: usize = 3;

/// One test hook's outcome, as the status lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPod {
    /// The hook's name (its pod's name).
    pub name: String,
    /// `Succeeded`, `Failed`, `Running`, `Unknown`.
    pub phase: String,
    /// The exit code of its first container that terminated with one, for a failed test.
    pub exit_code: Option<i32>,
    /// Its last log lines, redacted and joined with ` | `, for a failed test.
    pub log_tail: Option<String>,
}

impl TestPod {
    fn to_json(&self) -> Value {
        let mut v = json!({"name": self.name, "phase": self.phase});
        if let Some(c) = self.exit_code {
            v["exitCode"] = json!(c);
        }
        if let Some(l) = &self.log_tail {
            v["logTail"] = json!(l);
        }
        v
    }

    /// `pod web-test-connection (exit code 1): wget: bad address | ...`.
    fn describe(&self) -> String {
        let mut s = format!("pod {}", self.name);
        if let Some(c) = self.exit_code {
            s.push_str(&format!(" (exit code {c})"));
        }
        match &self.log_tail {
            Some(l) if !l.is_empty() => format!("{s}: {l}"),
            _ => format!("{s}: {}", self.phase),
        }
    }
}

/// What `helm test` came to.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Every test hook, in Helm's order.
    pub tests: Vec<TestPod>,
    /// Whether all of them succeeded (and helm said so).
    pub passed: bool,
    /// One line for the action's message: `helm test: 2 tests passed`, or which failed and why.
    pub summary: String,
}

impl TestOutcome {
    /// The status's `tests`: `{passed, summary, pods: [{name, phase, exitCode, logTail}]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "passed": self.passed,
            "summary": self.summary,
            "pods": self.tests.iter().map(TestPod::to_json).collect::<Vec<_>>(),
        })
    }
}

/// `helm test`'s arguments for `release`, without the cluster flags (which the caller adds
/// before them; `--timeout` here comes last, so it wins over the operation's).
pub(crate) fn args(release: &str, input: &TestInput) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["test".into(), release.into()];
    for f in &input.filter {
        argv.extend(["--filter".into(), f.into()]);
    }
    argv
}

/// Runs the tests of `release` in `namespace` and reads their outcome (see the module).
///
/// # Errors
/// Helm's errors of access (exit 3, 4) and the reads' errors; a failed test is not an error
/// but a [`TestOutcome`] that did not pass.
pub(crate) async fn run(
    helm: &Helm,
    client: &kube::Client,
    driver: &str,
    release: &str,
    namespace: &str,
    input: &TestInput,
) -> Result<TestOutcome, RunnerError> {
    let mut argv = args(release, input);
    argv.extend(helm.cluster_args(namespace));
    if let Some(t) = input::timeout(&input.timeout)? {
        argv.extend([
            "--timeout".into(),
            format!("{}ms", t.as_millis().max(1)).into(),
        ]);
    }
    let what = format!("helm test {namespace}/{release}");
    let helm_said = match helm.run(&what, &argv).await {
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::Failed => Some(e.to_string()),
        Err(e) => return Err(e),
    };
    let records = storage::records(client, namespace, driver, release).await?;
    let hooks = records
        .last()
        .and_then(|r| r.release_json().ok())
        .and_then(|j| serde_json::from_slice::<Value>(&j).ok())
        .map(|v| test_hooks(&v))
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut tests = Vec::new();
    for (name, phase) in hooks {
        let mut t = TestPod {
            name,
            phase,
            exit_code: None,
            log_tail: None,
        };
        if t.phase != "Succeeded" {
            (t.exit_code, t.log_tail) = failed_pod(&pods, &t.name, &helm.redactor).await;
        }
        tests.push(t);
    }
    Ok(outcome(tests, helm_said.map(|m| helm.redactor.redact(&m))))
}

/// The test hooks of a release's JSON that ran: `(name, last run's phase)`, in Helm's order. A
/// hook without a last run did not run (a `filter` left it out) and is not listed.
fn test_hooks(release: &Value) -> Vec<(String, String)> {
    release["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| {
            h["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == "test" || e == "test-success"))
        })
        .filter_map(|h| {
            let phase = h["last_run"]["phase"].as_str().filter(|p| !p.is_empty())?;
            Some((
                h["name"].as_str().unwrap_or_default().to_string(),
                phase.to_string(),
            ))
        })
        .collect()
}

/// The exit code and last log lines of test pod `name` (whatever of them can be read).
async fn failed_pod(
    pods: &Api<Pod>,
    name: &str,
    redactor: &crate::cli::Redactor,
) -> (Option<i32>, Option<String>) {
    let exit_code = match pods.get_opt(name).await {
        Ok(Some(p)) => p
            .status
            .and_then(|s| s.container_statuses)
            .into_iter()
            .flatten()
            .find_map(|c| c.state.and_then(|s| s.terminated).map(|t| t.exit_code)),
        _ => None,
    };
    let params = LogParams {
        tail_lines: Some(LOG_LINES),
        limit_bytes: Some(LOG_BYTES),
        ..LogParams::default()
    };
    let log_tail = match pods.logs(name, &params).await {
        Ok(text) => Some(redactor.redact(&one_line(&text))),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            Some("(its log cannot be read: the runner's Role lacks get on pods/log)".into())
        }
        Err(_) => None,
    };
    (exit_code, log_tail)
}

/// Log lines joined with ` | `, blank ones left out.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The outcome of `tests`, given what helm said when it failed (`helm_said`).
fn outcome(tests: Vec<TestPod>, helm_said: Option<String>) -> TestOutcome {
    let failed: Vec<&TestPod> = tests.iter().filter(|t| t.phase != "Succeeded").collect();
    let passed = failed.is_empty() && helm_said.is_none();
    let n = tests.len();
    let noun = |n: usize| if n == 1 { "test" } else { "tests" };
    let summary = if passed {
        format!("helm test: {n} {} passed", noun(n))
    } else if failed.is_empty() {
        // Helm failed without a failed test hook (none matched the filter, a timeout).
        format!("helm test failed: {}", helm_said.unwrap_or_default())
    } else {
        let mut shown: Vec<String> = failed
            .iter()
            .take(DESCRIBED)
            .map(|t| t.describe())
            .collect();
        if failed.len() > DESCRIBED {
            shown.push(format!("and {} more", failed.len() - DESCRIBED));
        }
        format!(
            "helm test: {} of {n} {} failed: {}",
            failed.len(),
            noun(n),
            shown.join("; ")
        )
    };
    TestOutcome {
        tests,
        passed,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_hooks_are_read_from_the_release() {
        let release = json!({"hooks": [
            {"name": "web-test-ok", "events": ["test"], "last_run": {"phase": "Succeeded"}},
            {"name": "web-pre", "events": ["pre-install"], "last_run": {"phase": "Succeeded"}},
            {"name": "web-test-bad", "events": ["test-success"], "last_run": {"phase": "Failed"}},
            {"name": "web-test-new", "events": ["test"], "last_run": {"phase": ""}},
        ]});
        assert_eq!(
            test_hooks(&release),
            [
                ("web-test-ok".to_string(), "Succeeded".to_string()),
                ("web-test-bad".into(), "Failed".into()),
            ]
        );
        assert!(test_hooks(&json!({})).is_empty());
    }

    #[test]
    fn outcomes_say_which_failed_and_why() {
        let pod = |name: &str, phase: &str, code: Option<i32>, log: Option<&str>| TestPod {
            name: name.into(),
            phase: phase.into(),
            exit_code: code,
            log_tail: log.map(String::from),
        };
        let ok = outcome(vec![pod("a", "Succeeded", None, None)], None);
        assert!(ok.passed);
        assert_eq!(ok.summary, "helm test: 1 test passed");
        let bad = outcome(
            vec![
                pod("a", "Succeeded", None, None),
                pod(
                    "b",
                    "Failed",
                    Some(3),
                    Some("checking | no answer from web:80"),
                ),
            ],
            Some("1 error occurred: pod b failed".into()),
        );
        assert!(!bad.passed);
        assert_eq!(
            bad.summary,
            "helm test: 1 of 2 tests failed: pod b (exit code 3): checking | no answer from web:80"
        );
        assert_eq!(
            bad.to_json()["pods"][1],
            json!({"name": "b", "phase": "Failed", "exitCode": 3, "logTail": "checking | no answer from web:80"})
        );
        let none = outcome(vec![], Some("timed out waiting for the condition".into()));
        assert!(!none.passed);
        assert_eq!(
            none.summary,
            "helm test failed: timed out waiting for the condition"
        );
        assert_eq!(one_line("a\n\n b \n"), "a | b");
        let filtered = TestInput {
            filter: vec!["name=a".into(), "!name=b".into()],
            ..TestInput::default()
        };
        assert_eq!(
            args("web", &filtered),
            ["test", "web", "--filter", "name=a", "--filter", "!name=b"]
                .map(OsString::from)
                .to_vec()
        );
    }
}
