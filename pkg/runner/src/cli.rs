//! The command line of a runner binary. A runner is configured by its environment only; the one
//! argument it takes is `--help` (`-h`) or `--version` (`-V`), as a person at a terminal expects.
//! [`Manager::run`](crate::Manager::run) reads it first: help and version go to standard output
//! (exit 0); any other argument is one line on standard error and exit 2.
//!
//! The help lists the variables ([`crate::config::VARIABLES`] and the runner's own, in
//! [`About::variables`]) and the exit codes ([`Exit::ALL`]) from the same tables the READMEs
//! show; the version names the Kubernetes, Helm or Argo versions the runner was tested with,
//! pinned in `hack/install-tools.sh` and read at build time ([`tested`]).

use std::ffi::OsString;

use crate::config::{Required, VARIABLES, Variable};
use crate::error::Exit;

/// The versions the runners are tested with, as `hack/install-tools.sh` pins them (the crate's
/// build script reads them from it, so that there is one pin).
pub mod tested {
    /// Kubernetes (`KUBERNETES_VERSION`): the API server and the local cluster of the tests.
    pub const KUBERNETES: &str = env!("KAR_PINNED_KUBERNETES_VERSION");
    /// The oldest Kubernetes minor `k8s-openapi` covers (`KUBERNETES_OLDEST_VERSION`): its API
    /// server alone, which the tests that need only an API server run against too.
    pub const KUBERNETES_OLDEST: &str = env!("KAR_PINNED_KUBERNETES_OLDEST_VERSION");
    /// Helm 4 (`HELM4_VERSION`): the default, the helm-runner image's.
    pub const HELM4: &str = env!("KAR_PINNED_HELM4_VERSION");
    /// Helm 3 (`HELM3_VERSION`): still supported and tested.
    pub const HELM3: &str = env!("KAR_PINNED_HELM3_VERSION");
    /// Argo Workflows 4 (`ARGO4_VERSION`): the default.
    pub const ARGO4: &str = env!("KAR_PINNED_ARGO4_VERSION");
    /// Argo Workflows 3 (`ARGO3_VERSION`): still supported and tested.
    pub const ARGO3: &str = env!("KAR_PINNED_ARGO3_VERSION");
}

/// What `--help` and `--version` say about a runner binary; handed to
/// [`Manager::about`](crate::Manager::about).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct About {
    /// The binary's name, for example `helm-runner`.
    pub name: &'static str,
    /// Its version: the binary's own `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// What it does: one sentence, without its final period.
    pub summary: &'static str,
    /// The variables it reads besides [`VARIABLES`].
    pub variables: &'static [Variable],
    /// What it was tested with: a tool and its version, for example `("Helm", tested::HELM4)`.
    pub tested_with: &'static [(&'static str, &'static str)],
    /// Where its reference is, in the source repository, for example `docs/argo.md`.
    pub docs: &'static str,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// No argument: run the action.
    Run,
    /// `--help` or `-h`.
    Help,
    /// `--version` or `-V`.
    Version,
    /// Anything else: the one-line reason, for standard error (exit 2).
    Invalid(String),
}

/// Reads the arguments after the program's name; `name` is the binary's, for the message.
pub fn parse(name: &str, args: impl IntoIterator<Item = OsString>) -> Invocation {
    let args: Vec<OsString> = args.into_iter().collect();
    match args.as_slice() {
        [] => Invocation::Run,
        [one] if one == "--help" || one == "-h" => Invocation::Help,
        [one] if one == "--version" || one == "-V" => Invocation::Version,
        _ => {
            let shown: Vec<String> = args
                .iter()
                .map(|a| format!("{:?}", a.to_string_lossy()))
                .collect();
            Invocation::Invalid(format!(
                "{name}: unexpected argument{} {}: {name} is configured by environment variables \
                 and takes no arguments but a lone --help or --version (`{name} --help` lists \
                 the variables)",
                if args.len() > 1 { "s" } else { "" },
                shown.join(" ")
            ))
        }
    }
}

/// The line length the help is wrapped to.
const WIDTH: usize = 100;

/// The text of `--help`: what the runner does, how to call it, the variables with their
/// defaults and meanings (the framework's, then the runner's own), the exit codes, and where
/// the reference is.
pub fn help(about: &About) -> String {
    let name = about.name;
    let mut out = String::new();
    if about.summary.is_empty() {
        out.push_str(&format!("{name} {}\n", about.version));
    } else {
        wrap(
            &mut out,
            &format!("{name} {}: {}.", about.version, about.summary),
            0,
        );
    }
    out.push('\n');
    for (i, (args, what)) in [
        ("", "run the action the environment describes"),
        (" --help, -h", "print this help"),
        (
            " --version, -V",
            "print the version and the versions it was tested with",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let call = format!("{name}{args}");
        let lead = if i == 0 { "Usage: " } else { "       " };
        out.push_str(&format!(
            "{lead}{call:<width$}   {what}\n",
            width = name.len() + 14
        ));
    }
    out.push('\n');
    wrap(
        &mut out,
        &format!(
            "{name} takes no other argument. It reads the environment variables below and its \
             input manifest, carries out one action on the cluster (in-cluster configuration, \
             else KUBECONFIG), reports its status in the ConfigMap named RUNNER_CONTEXT_NAME and \
             exits with one of the codes below: it is meant to run as a Kubernetes Job. Logs go \
             to standard error. Booleans accept what Go's strconv.ParseBool accepts (true, 1, T, \
             false, 0, ...); durations are Go durations (90s, 10m, 1h30m, 1.5h)."
        ),
        0,
    );
    out.push_str("\nVariables every runner reads:\n");
    variables(&mut out, VARIABLES);
    if !about.variables.is_empty() {
        out.push_str(&format!("\nVariables {name} also reads:\n"));
        variables(&mut out, about.variables);
    }
    out.push_str("\nExit codes:\n");
    for exit in Exit::ALL {
        let mut text = plain(exit.meaning());
        if let Some(retrying) = exit.retrying() {
            text.push_str(&format!(" [retrying: {}]", plain(retrying)));
        }
        let code = exit.code().to_string();
        out.push_str(&format!("  {code:<5}"));
        wrap_rest(&mut out, &text, 7, WIDTH - 7);
    }
    out.push('\n');
    let mut docs = String::from("README.md");
    if !about.docs.is_empty() {
        docs = format!("{} and README.md", about.docs);
    }
    wrap(
        &mut out,
        &format!("Reference: {docs} in the source repository."),
        0,
    );
    out
}

/// The text of `--version`: the name and version, then what it was tested with.
pub fn version(about: &About) -> String {
    let mut out = format!("{} {}\n", about.name, about.version);
    if !about.tested_with.is_empty() {
        out.push_str("tested with:\n");
        for (tool, version) in about.tested_with {
            out.push_str(&format!("  {tool} {version}\n"));
        }
    }
    out
}

/// A variable table: the name, whether it is required or its default, then its meaning.
fn variables(out: &mut String, table: &[Variable]) {
    for v in table {
        let mut head = format!("  {}", v.name);
        match v.required {
            Required::Yes => head.push_str(" (required)"),
            Required::When(case) => head.push_str(&format!(" (required {})", plain(case))),
            Required::No => {}
        }
        if let Some(default) = v.default {
            head.push_str(&format!(" (default: {})", plain(default)));
        }
        out.push_str(&head);
        out.push('\n');
        wrap(out, &plain(v.meaning), 6);
    }
}

/// Markdown with code spans as text for a terminal: without the backticks.
fn plain(markdown: &str) -> String {
    markdown.replace('`', "")
}

/// `text`'s words in lines of at most [`WIDTH`] characters (longer words alone), each indented
/// by `indent` spaces.
fn wrap(out: &mut String, text: &str, indent: usize) {
    out.push_str(&" ".repeat(indent));
    wrap_rest(out, text, indent, WIDTH - indent);
}

/// Like [`wrap`], with the first line's indentation already written.
fn wrap_rest(out: &mut String, text: &str, indent: usize, width: usize) {
    let mut line = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > width {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line = 0;
        }
        if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABOUT: About = About {
        name: "x-runner",
        version: "1.2.3",
        summary: "does x",
        variables: &[Variable {
            name: "RUNNER_X",
            required: Required::When("for `x`"),
            default: Some("`y`"),
            meaning: "what `x` is",
        }],
        tested_with: &[("Kubernetes", tested::KUBERNETES), ("X", "v9.9.9")],
        docs: "docs/x.md",
    };

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_help_or_version_alone() {
        assert_eq!(parse("x-runner", args(&[])), Invocation::Run);
        for a in ["--help", "-h"] {
            assert_eq!(parse("x-runner", args(&[a])), Invocation::Help);
        }
        for a in ["--version", "-V"] {
            assert_eq!(parse("x-runner", args(&[a])), Invocation::Version);
        }
        for bad in [
            &["--verbose"][..],
            &["help"],
            &["--help", "--version"],
            &["-hV"],
        ] {
            let Invocation::Invalid(message) = parse("x-runner", args(bad)) else {
                panic!("{bad:?} accepted");
            };
            assert!(
                message.starts_with("x-runner: unexpected argument"),
                "{message}"
            );
            assert!(message.contains(&format!("{:?}", bad[0])), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn help_lists_every_variable_and_exit_code_without_markdown() {
        let text = help(&ABOUT);
        assert!(text.starts_with("x-runner 1.2.3: does x.\n"), "{text}");
        for v in VARIABLES.iter().chain(ABOUT.variables) {
            assert!(text.contains(&format!("\n  {}", v.name)), "{}", v.name);
        }
        assert!(text.contains("  RUNNER_X (required for x) (default: y)\n      what x is\n"));
        assert!(text.contains("  RUNNER_INPUT_MANIFEST_PATH (required)\n"));
        assert!(
            text.contains("  RUNNER_TERMINATION_MESSAGE_PATH (default: /dev/termination-log)\n")
        );
        for exit in Exit::ALL {
            assert!(
                text.contains(&format!("\n  {:<5}", exit.code())),
                "{exit:?}"
            );
        }
        assert!(text.contains("\n  4    the cluster could not be reached"));
        assert!(!text.contains('`'), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("docs/x.md and README.md"));
    }

    #[test]
    fn version_names_the_pinned_tools() {
        let text = version(&ABOUT);
        assert_eq!(
            text,
            format!(
                "x-runner 1.2.3\ntested with:\n  Kubernetes {}\n  X v9.9.9\n",
                tested::KUBERNETES
            )
        );
        for pin in [
            tested::KUBERNETES,
            tested::KUBERNETES_OLDEST,
            tested::HELM4,
            tested::HELM3,
            tested::ARGO4,
            tested::ARGO3,
        ] {
            assert!(pin.starts_with('v') && pin.split('.').count() == 3, "{pin}");
        }
    }
}
