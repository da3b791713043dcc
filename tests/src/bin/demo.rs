//! The demo: starts a local control plane (etcd + kube-apiserver with Argo's Workflow CRD), runs
//! the real `argo-runner` binary on one of Argo's own example workflows, plays Argo's workflow
//! controller (no controller or kubelet runs here), and prints the status ConfigMap.
//!
//! Usage: `cargo run -p action-runner-tests --bin demo -- [EXAMPLE] [--fail]` (EXAMPLE is a file
//! name under Argo's `examples/`, default `hello-world`). `hack/demo.sh` builds what it needs first.

use std::time::Duration;

use action_runner_tests::control_plane::ControlPlane;
use action_runner_tests::controllers::{Outcome, play_argo_controller};
use action_runner_tests::process::RunnerCommand;
use action_runner_tests::test_env::{create_status_configmap, reported_status};
use action_runner_tests::tools::{Tools, runner_binary};
use anyhow::{Context, Result};

#[tokio::main]
async fn main() -> Result<std::process::ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fail = args.iter().any(|a| a == "--fail");
    let example = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or("hello-world".into());
    let tools = Tools::locate()?;
    let manifest = tools.argo_example(&example);
    anyhow::ensure!(
        manifest.exists(),
        "no Argo example named {example:?} ({})",
        manifest.display()
    );

    eprintln!("==> starting etcd and kube-apiserver on loopback, installing Argo's Workflow CRD");
    let crd = tools.argo_workflow_crd();
    let cp = tokio::task::spawn_blocking(move || ControlPlane::start(&[crd])).await??;
    let client = cp.client().await?;
    let ns = cp.namespace("demo").await?;
    let name = example.replace(['_', '.'], "-");
    create_status_configmap(&client, &ns, &name).await?;
    eprintln!(
        "==> control plane at {} (kubeconfig {})",
        cp.server,
        cp.kubeconfig.display()
    );
    eprintln!(
        "==> argo-runner: Workflow {ns}/{name} from {}",
        manifest.display()
    );

    let cmd = RunnerCommand::new(
        runner_binary("argo-runner"),
        &cp.kubeconfig,
        &ns,
        &name,
        &manifest,
    )
    .var("RUNNER_TIMEOUT", Some("2m"))
    .var("RUNNER_LOGGER_DEV_MODE", Some("true"))
    .var("RUST_LOG", Some("info"));
    let mut runner = tokio::process::Command::new(&cmd.bin)
        .env_clear()
        .envs(&cmd.env)
        .kill_on_drop(true)
        .spawn()
        .context("spawn argo-runner")?;

    let outcome = if fail {
        Outcome::Failed("child 'demo' failed: exit code 1 (played by the demo)".into())
    } else {
        Outcome::Succeeded
    };
    eprintln!("==> playing Argo's workflow controller: Running, then {outcome:?}");
    play_argo_controller(
        client.clone(),
        ns.clone(),
        name.clone(),
        Duration::from_secs(2),
        outcome,
    )
    .await?;

    let status = runner.wait().await?;
    let reported = reported_status(&client, &ns, &name).await?;
    println!(
        "ConfigMap {ns}/{name} data.status:\n{}",
        serde_json::to_string_pretty(&reported).unwrap_or_default()
    );
    let code = status.code().unwrap_or(1);
    eprintln!("==> argo-runner exited with {code}");
    Ok(std::process::ExitCode::from(code as u8))
}
