use std::time::Duration;
use action_runner_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let t = std::time::Instant::now();
    let cp = ControlPlane::shared();
    eprintln!("control plane up in {:?}", t.elapsed());
    let client = cp.client().await.unwrap();
    let ns = cp.namespace("smoke").await.unwrap();
    create_status_configmap(&client, &ns, "hello").await.unwrap();
    let tools = Tools::locate().unwrap();
    let cmd = RunnerCommand::new(runner_binary("argo-runner"), &cp.kubeconfig, &ns, "hello", &tools.argo_example("hello-world"));
    let child = cmd.spawn().unwrap();
    play_argo_controller(client.clone(), ns.clone(), "hello".into(), Duration::from_millis(500), Outcome::Succeeded).await.unwrap();
    let out = collect(child).await.unwrap();
    eprintln!("{}\n{}", out.stderr, out.stdout);
    eprintln!("{:?}", reported_status(&client, &ns, "hello").await.unwrap());
    assert_eq!(out.code, 0);
}
