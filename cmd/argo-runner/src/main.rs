//! `argo-runner`: submits an Argo Workflow and waits until it finishes. See the README for the
//! `RUNNER_*` variables and exit codes, or run `argo-runner --help`.

use action_runner::cli::tested;
use action_runner::{About, ConfigMapReporter, Manager};
use action_runner_argo::ArgoRunner;

/// What `--help` and `--version` say.
const ABOUT: About = About {
    name: "argo-runner",
    version: env!("CARGO_PKG_VERSION"),
    summary: "creates an Argo Workflow (or one from a WorkflowTemplate) from its input manifest \
              and waits until it has finished, reporting its progress, outcome and outputs",
    variables: action_runner_argo::VARIABLES,
    tested_with: &[
        ("Argo Workflows", tested::ARGO4),
        ("Argo Workflows", tested::ARGO3),
        ("Kubernetes", tested::KUBERNETES),
        ("Kubernetes API server", tested::KUBERNETES_OLDEST),
    ],
    docs: "docs/argo.md",
};

fn main() -> std::process::ExitCode {
    action_runner::block_on(
        Manager::new(ArgoRunner::new(), |client, ctx| {
            ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
        })
        .about(ABOUT)
        .run(),
    )
}
