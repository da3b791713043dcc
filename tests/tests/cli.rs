//! The runner binaries at a terminal: `--help` (`-h`) and `--version` (`-V`) print to standard
//! output and exit 0 without reading any variable; any other argument is one line on standard
//! error and exit 2 (and, in a pod, the termination message). Needs `cargo build --bins`.

use std::path::Path;
use std::process::{Command, Output};

use action_runner::Variable;
use action_runner::cli::tested;
use action_runner_tests::tools::runner_binary;

/// The binaries, their own variables and the tools they name in `--version`.
fn runners() -> [(&'static str, &'static [Variable], Vec<String>); 2] {
    [
        (
            "helm-runner",
            action_runner_helm::config::VARIABLES,
            vec![
                format!("Helm {}", pin("HELM4_VERSION")),
                format!("Helm {}", pin("HELM3_VERSION")),
                format!("Kubernetes {}", pin("KUBERNETES_VERSION")),
                format!("Kubernetes API server {}", pin("KUBERNETES_OLDEST_VERSION")),
            ],
        ),
        (
            "argo-runner",
            action_runner_argo::VARIABLES,
            vec![
                format!("Argo Workflows {}", pin("ARGO4_VERSION")),
                format!("Argo Workflows {}", pin("ARGO3_VERSION")),
                format!("Kubernetes {}", pin("KUBERNETES_VERSION")),
                format!("Kubernetes API server {}", pin("KUBERNETES_OLDEST_VERSION")),
            ],
        ),
    ]
}

/// `NAME`'s version as `hack/install-tools.sh` pins it, read here on its own (not through the
/// build script whose work this checks).
fn pin(name: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/install-tools.sh");
    let text = std::fs::read_to_string(&script).expect("hack/install-tools.sh");
    let prefix = format!("{name}=");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name}= in hack/install-tools.sh"));
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .expect("a version")
        .to_string()
}

/// Runs `binary` with `args` in an environment holding only `PATH` and `env`.
fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(runner_binary(binary))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("the runner starts")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

#[test]
fn help_lists_the_variables_and_exit_codes() {
    for (binary, own, _) in runners() {
        let out = run(binary, &["--help"], &[]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{binary} --help: {help}");
        assert_eq!(text(&out.stderr), "", "{binary} --help");
        assert!(
            help.starts_with(&format!("{binary} {}: ", env!("CARGO_PKG_VERSION"))),
            "{help}"
        );
        for v in action_runner::config::VARIABLES.iter().chain(own) {
            assert!(
                help.contains(&format!("\n  {}", v.name)),
                "{binary} --help lacks {}",
                v.name
            );
        }
        for e in action_runner::Exit::ALL {
            assert!(
                help.contains(&format!("\n  {:<5}", e.code())),
                "{binary} --help lacks exit code {}",
                e.code()
            );
        }
        assert!(help.contains("(default: /dev/termination-log)"), "{help}");
        assert!(!help.contains('`'), "{help}");

        let short = run(binary, &["-h"], &[]);
        assert_eq!(short.status.code(), Some(0));
        assert_eq!(text(&short.stdout), help, "{binary} -h is --help");
    }
}

#[test]
fn version_names_the_runner_and_the_pinned_tools() {
    for (binary, _, tools) in runners() {
        for flag in ["--version", "-V"] {
            let out = run(binary, &[flag], &[]);
            assert_eq!(out.status.code(), Some(0), "{binary} {flag}");
            assert_eq!(text(&out.stderr), "", "{binary} {flag}");
            let mut want = format!("{binary} {}\ntested with:\n", env!("CARGO_PKG_VERSION"));
            for tool in &tools {
                want.push_str(&format!("  {tool}\n"));
            }
            assert_eq!(text(&out.stdout), want, "{binary} {flag}");
        }
    }
    // The framework's own copy of the pins (its build script reads the same file).
    assert_eq!(tested::KUBERNETES, pin("KUBERNETES_VERSION"));
    assert_eq!(tested::KUBERNETES_OLDEST, pin("KUBERNETES_OLDEST_VERSION"));
    assert_eq!(tested::HELM4, pin("HELM4_VERSION"));
    assert_eq!(tested::ARGO3, pin("ARGO3_VERSION"));
}

#[test]
fn any_other_argument_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    for (binary, _, _) in runners() {
        for args in [
            &["--bogus"][..],
            &["help"],
            &["--help", "--version"],
            &["-hV"],
            &["install"],
        ] {
            std::fs::write(&termination, "").unwrap();
            let out = run(
                binary,
                args,
                &[(
                    "RUNNER_TERMINATION_MESSAGE_PATH",
                    termination.to_str().unwrap(),
                )],
            );
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{binary} {args:?}: {stderr}");
            assert_eq!(text(&out.stdout), "", "{binary} {args:?}");
            assert_eq!(stderr.lines().count(), 1, "{binary} {args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("{binary}: unexpected argument")),
                "{stderr}"
            );
            assert!(stderr.contains(&format!("{:?}", args[0])), "{stderr}");
            assert!(stderr.contains("--help"), "{stderr}");
            // Not the configuration's error: the arguments are read first.
            assert!(!stderr.contains("RUNNER_INPUT_MANIFEST_PATH"), "{stderr}");
            assert_eq!(
                std::fs::read_to_string(&termination).unwrap(),
                stderr,
                "{binary} {args:?}: the termination message"
            );
        }
    }
}
