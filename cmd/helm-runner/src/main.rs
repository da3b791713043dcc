//! `helm-runner`: installs, upgrades, uninstalls or rolls back a Helm release with the helm CLI
//! (Helm 4 or Helm 3) and writes the release and additional output files. See `cmd/helm-runner/README.md` for the variables, the input
//! manifest, the outputs and the exit codes.

use action_runner::{ConfigMapReporter, Manager};
use action_runner_helm::HelmRunner;

fn main() -> std::process::ExitCode {
    action_runner::block_on(
        Manager::new(HelmRunner::new(), |client, ctx| {
            ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
        })
        .run(),
    )
}
