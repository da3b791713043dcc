//! `helm-runner`: installs, upgrades, uninstalls or rolls back a Helm release with the helm CLI
//! (Helm 4 or Helm 3) and writes the release and additional output files. See
//! `cmd/helm-runner/README.md` for the variables, the input manifest, the outputs and the exit
//! codes, or run `helm-runner --help`.

use action_runner::cli::tested;
use action_runner::{About, ConfigMapReporter, Manager};
use action_runner_helm::HelmRunner;

/// What `--help` and `--version` say.
const ABOUT: About = About {
    name: "helm-runner",
    version: env!("CARGO_PKG_VERSION"),
    summary: "installs, upgrades, uninstalls or rolls back a Helm release with the helm CLI \
              (Helm 4 or Helm 3) and writes the release and additional output files",
    variables: action_runner_helm::config::VARIABLES,
    tested_with: &[
        ("Helm", tested::HELM4),
        ("Helm", tested::HELM3),
        ("Kubernetes", tested::KUBERNETES),
        ("Kubernetes API server", tested::KUBERNETES_OLDEST),
    ],
    docs: "cmd/helm-runner/README.md",
};

fn main() -> std::process::ExitCode {
    action_runner::block_on(
        Manager::new(HelmRunner::new(), |client, ctx| {
            ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
        })
        .about(ABOUT)
        .run(),
    )
}
