//! The Argo side: `argo-runner` against `argo submit --wait` (and Capact's Go `argo-runner`
//! when its binary is given), each submitting Argo's `hello-world` example and waiting for it
//! while the driver plays Argo's workflow controller.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use action_runner_tests::control_plane::ControlPlane;
use action_runner_tests::controllers::{now, patch_workflow_status, workflows};
use action_runner_tests::test_env::{TestEnv, create_status_configmap};
use action_runner_tests::tools::runner_binary;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::measure::*;
use crate::{audit, runner_env, tool_command};

/// One tool of the Argo comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// Our `argo-runner`.
    Ours,
    /// `argo submit --wait` (the Argo CLI against the Kubernetes API directly).
    ArgoCli,
    /// Capact's Go `argo-runner`.
    Capact,
}

impl Tool {
    pub fn label(self) -> &'static str {
        match self {
            Tool::Ours => "argo-runner (ours)",
            Tool::ArgoCli => "argo submit --wait",
            Tool::Capact => "Capact argo-runner",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Tool::Ours => "argo-runner",
            Tool::ArgoCli => "argo-cli",
            Tool::Capact => "capact-argo-runner",
        }
    }
}

/// The Argo comparison's fixtures.
pub struct ArgoBench {
    /// The bench's control plane: each run has a [`TestEnv`] of its own there.
    pub cp: &'static ControlPlane,
    /// The Argo CLI (`KAR_ARGO_CLI`).
    pub argo_cli: Option<PathBuf>,
    /// Capact's argo-runner (`KAR_CAPACT_ARGO_RUNNER`).
    pub capact: Option<PathBuf>,
    /// The Workflow submitted: Argo's `examples/hello-world.yaml`.
    pub manifest: PathBuf,
}

impl ArgoBench {
    /// The tools present, ours first.
    pub fn tools(&self) -> Vec<Tool> {
        let mut t = vec![Tool::Ours];
        if self.argo_cli.is_some() {
            t.push(Tool::ArgoCli);
        }
        if self.capact.is_some() {
            t.push(Tool::Capact);
        }
        t
    }

    pub fn binary(&self, tool: Tool) -> PathBuf {
        match tool {
            Tool::Ours => runner_binary("argo-runner"),
            Tool::ArgoCli => self.argo_cli.clone().unwrap_or_default(),
            Tool::Capact => self.capact.clone().unwrap_or_default(),
        }
    }

    /// The command that submits Workflow `name` in `env`'s namespace and waits for it; `dir`
    /// is a scratch directory of this run.
    async fn command(
        &self,
        env: &TestEnv,
        tool: Tool,
        kubeconfig: &std::path::Path,
        name: &str,
        dir: &std::path::Path,
    ) -> Result<std::process::Command> {
        let ns = env.ns.as_str();
        let mut cmd = tool_command(env, &self.binary(tool), kubeconfig);
        match tool {
            Tool::Ours => {
                cmd.env("RUNNER_INPUT_MANIFEST_PATH", &self.manifest)
                    .env("RUNNER_CONTEXT_NAME", name)
                    .env("RUNNER_CONTEXT_PLATFORM_NAMESPACE", ns);
            }
            Tool::ArgoCli => {
                cmd.arg("submit")
                    .arg(&self.manifest)
                    .args(["--name", name, "--wait", "-n", ns, "--kubeconfig"])
                    .arg(kubeconfig);
            }
            Tool::Capact => {
                let vars =
                    crate::capact::argo_prepare(&env.client, &self.manifest, ns, name, dir).await?;
                cmd.envs(vars);
            }
        }
        Ok(cmd)
    }

    /// One run of `tool`: spawn, see the Workflow appear, complete it, see the process exit.
    pub async fn single(&self, tool: Tool, rep: usize) -> Result<Value> {
        let (env, kubeconfig) =
            runner_env(self.cp, &format!("single-{}-{rep}", tool.key())).await?;
        let (admin, ns) = (&env.client, &env.ns);
        let name = "bench";
        create_status_configmap(admin, ns, name).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let api = workflows(admin, ns);
        let watch = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = events.next().await {
                if let Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_)) = ev {
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        });
        // Let the driver's watch start before the process does.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let since = audit::now();
        let cmd = self
            .command(&env, tool, &kubeconfig, name, env.dir.path())
            .await?;
        let t0 = Instant::now();
        let (_, mut exited) = spawn_measured(cmd, Some(Duration::from_millis(5)))?;
        let seen = tokio::select! {
            seen = rx => seen?,
            e = &mut exited => bail!("{} exited before its Workflow was seen: {:?}", tool.label(), e?),
        };
        watch.abort();
        let started = now();
        let status = json!({"phase": "Running", "startedAt": started});
        patch_workflow_status(admin, ns, name, status).await?;
        // Give the process time to be waiting, so the figure is the notice alone.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t2 = Instant::now();
        let status = json!({"phase": "Succeeded", "startedAt": started, "finishedAt": now()});
        patch_workflow_status(admin, ns, name, status).await?;
        // The API server has stored the change: what follows is its watch delivery, the tool's
        // own work and its exit (the part a tool can shorten).
        let stored = Instant::now();
        let done = tokio::time::timeout(Duration::from_secs(120), exited)
            .await
            .context("did not exit")??;
        if done.code != 0 {
            bail!(
                "{} exited with {}: {}",
                tool.label(),
                done.code,
                done.stderr_tail
            );
        }
        Ok(json!({
            "coldStartMs": ms(seen - t0),
            "completionNoticeMs": ms(done.at.saturating_duration_since(t2)),
            "statusPatchMs": ms(stored - t2),
            "noticeAfterStoredMs": ms(done.at.saturating_duration_since(stored)),
            "maxRssKiB": done.max_rss_kib,
            "cpuMs": ms(done.cpu),
            "apiRequests": audit::counts(&env, &since),
        }))
    }

    /// N processes of `tool` at once, each with its own Workflow; the driver completes each
    /// Workflow as soon as it sees it.
    pub async fn scale(&self, tool: Tool, n: usize) -> Result<Value> {
        let (env, kubeconfig) = runner_env(self.cp, &format!("scale-{}-{n}", tool.key())).await?;
        for i in 0..n {
            create_status_configmap(&env.client, &env.ns, &format!("wf-{i}")).await?;
        }
        let admin = env.client.clone();
        let api = workflows(&admin, &env.ns);
        let driver_ns = env.ns.clone();
        let driver = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            let mut done = std::collections::BTreeSet::new();
            while let Some(ev) = events.next().await {
                if let Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) = ev {
                    let name = obj.metadata.name.clone().unwrap_or_default();
                    if done.insert(name.clone()) {
                        let (c, ns) = (admin.clone(), driver_ns.clone());
                        tokio::spawn(async move {
                            let status = json!({"phase": "Succeeded", "startedAt": now(), "finishedAt": now()});
                            let _ = patch_workflow_status(&c, &ns, &name, status).await;
                        });
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let api_cpu_before = self.cp.apiserver_pid().map(process_cpu).unwrap_or_default();
        let mut commands = Vec::new();
        for i in 0..n {
            let run_dir = env.path(&format!("wf-{i}"));
            std::fs::create_dir_all(&run_dir)?;
            commands.push(
                self.command(&env, tool, &kubeconfig, &format!("wf-{i}"), &run_dir)
                    .await?,
            );
        }
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for cmd in commands {
            handles.push(spawn_measured(cmd, None)?.1);
        }
        let mut failures = 0;
        let mut cpu = Duration::ZERO;
        let mut last = t0;
        let mut first_failure = None;
        for h in handles {
            let e = tokio::time::timeout(Duration::from_secs(600), h)
                .await
                .context("did not exit")??;
            if e.code != 0 {
                failures += 1;
                first_failure.get_or_insert(e.stderr_tail.clone());
            }
            cpu += e.cpu;
            last = last.max(e.at);
        }
        let api_cpu = self
            .cp
            .apiserver_pid()
            .map(process_cpu)
            .unwrap_or_default()
            .saturating_sub(api_cpu_before);
        driver.abort();
        Ok(json!({
            "n": n,
            "wallMs": ms(last - t0),
            "processCpuMs": ms(cpu),
            "apiServerCpuMs": ms(api_cpu),
            "failures": failures,
            "firstFailure": first_failure,
        }))
    }

    /// Every figure of `tool`: `reps` single runs (medians) and the scale runs.
    pub async fn measure(
        &self,
        tools: &[Tool],
        reps: usize,
        scale: &[usize],
    ) -> Result<Vec<(Tool, Value)>> {
        // The single runs take turns, one per tool per repetition, so a drift of the machine's
        // speed falls on every tool alike.
        let mut singles: Vec<Vec<Value>> = vec![Vec::new(); tools.len()];
        for rep in 0..reps {
            for (i, &tool) in tools.iter().enumerate() {
                eprintln!("bench: {} run {}/{reps}", tool.label(), rep + 1);
                singles[i].push(self.single(tool, rep).await?);
            }
        }
        let mut out = Vec::new();
        for (&tool, singles) in tools.iter().zip(singles) {
            out.push((tool, self.summary(tool, singles, scale).await?));
        }
        Ok(out)
    }

    /// The medians of `tool`'s single runs `singles`, then its runs of N at once for each N of
    /// `scale`.
    async fn summary(&self, tool: Tool, singles: Vec<Value>, scale: &[usize]) -> Result<Value> {
        let peak_kib = median_of(&singles, "maxRssKiB").max(1.0);
        let mut scales = Vec::new();
        for &n in scale {
            let available = mem_available_kib() as f64;
            if n > 1 && n as f64 * peak_kib * 1.5 > available * 0.7 {
                eprintln!(
                    "bench: {} x{n} skipped: would need about {:.0} MiB",
                    tool.label(),
                    n as f64 * peak_kib * 1.5 / 1024.0
                );
                scales.push(json!({"n": n, "skipped": "not enough memory on this machine"}));
                continue;
            }
            eprintln!("bench: {} x{n} at once", tool.label());
            scales.push(self.scale(tool, n).await?);
        }
        Ok(json!({
            "label": tool.label(),
            "binaryBytes": file_size(&self.binary(tool)),
            "coldStartMs": median_of(&singles, "coldStartMs"),
            "completionNoticeMs": median_of(&singles, "completionNoticeMs"),
            "statusPatchMs": median_of(&singles, "statusPatchMs"),
            "noticeAfterStoredMs": median_of(&singles, "noticeAfterStoredMs"),
            "maxRssKiB": median_of(&singles, "maxRssKiB"),
            "cpuMs": median_of(&singles, "cpuMs"),
            "apiRequests": singles.last().map(|s| s["apiRequests"].clone()),
            "runs": singles,
            "scale": scales,
        }))
    }
}
