//! `argo-runner`: submits an Argo Workflow and waits until it finishes. See the README for the
//! `RUNNER_*` variables and exit codes.

use action_runner::{ConfigMapReporter, Manager};
use action_runner_argo::ArgoRunner;

fn main() -> std::process::ExitCode {
    action_runner::block_on(
        Manager::new(ArgoRunner::new(), |client, ctx| {
            ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
        })
        .run(),
    )
}
