//! Benchmark: `argo-runner` side by side with the tools a user would pick instead, on one local
//! control plane, in one run. Writes `bench.json` and `bench.md` into the output directory.
//!
//! Usage: `hack/bench.sh [--smoke] [--out DIR]` (builds release binaries and the peers first).
//! `--smoke`: N = 1 and one repetition, so that CI keeps the benchmark from rotting.
//!
//! Figures, for each tool (ours and each peer) in the same run:
//! - binary size (bytes, as built: ours stripped by the release profile, Go peers with `-s -w`);
//! - cold start: process spawn until the driver's watch shows the Workflow (ms);
//! - completion notice: the driver's status patch to `Succeeded` until the process exited (ms);
//! - peak RSS (KiB, `ru_maxrss` of `wait4`) and CPU time (user + system, ms) over a whole run;
//! - API requests per run, by verb and resource, from the API server's audit log (each run
//!   authenticates as its own ServiceAccount, so its requests are told apart);
//! - scale: N at once, each creating and waiting for its own Workflow while the driver completes
//!   them: wall time until all exited, summed CPU of the processes, API server CPU, failures.
//!
//! Latency figures are medians over the repetitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use action_runner_tests::*;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

const REPETITIONS: usize = 5;
const SCALE_FULL: [usize; 4] = [1, 10, 50, 200];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    /// Our `argo-runner`.
    ArgoRunner,
    /// `argo submit --wait` (the Argo CLI against the Kubernetes API directly).
    ArgoCli,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::ArgoRunner => "argo-runner (ours)",
            Tool::ArgoCli => "argo submit --wait",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tool::ArgoRunner => "argo-runner",
            Tool::ArgoCli => "argo-cli",
        }
    }
}

/// What `wait4` tells of a finished process.
#[derive(Debug, Clone)]
struct Exited {
    code: i32,
    at: Instant,
    max_rss_kib: u64,
    cpu: Duration,
    /// The last lines of its standard error.
    stderr_tail: String,
}

/// Spawns `cmd` and returns its pid and a task resolving when it exits (reaped with `wait4`,
/// which gives peak RSS and CPU time).
fn spawn_measured(
    mut cmd: std::process::Command,
) -> Result<(u32, tokio::task::JoinHandle<Exited>)> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let stderr = child.stderr;
    // Peak RSS is sampled from /proc/<pid>/status (VmHWM, the new program's high-water mark)
    // every 5 ms: wait4's ru_maxrss would also count the RSS of this driver, which the child
    // shared until exec.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok());
            match hwm {
                Some(kib) => peak = peak.max(kib),
                None => break, // a zombie: it has exited
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        peak
    });
    let handle = tokio::task::spawn_blocking(move || {
        // Drain stderr so the process never blocks on a full pipe.
        let drain = std::thread::spawn(move || {
            let mut sink = Vec::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_end(&mut e, &mut sink);
            }
            let text = String::from_utf8_lossy(&sink).into_owned();
            let lines: Vec<&str> = text.lines().rev().take(3).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
        let at = Instant::now();
        let stderr_tail = drain.join().unwrap_or_default();
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Exited {
            code: if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -1
            },
            at,
            max_rss_kib: sampler.join().unwrap_or(0),
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            stderr_tail,
        }
    });
    Ok((pid, handle))
}

struct Bench {
    cp: ControlPlane,
    admin: kube::Client,
    argo_cli: Option<PathBuf>,
    manifest: PathBuf,
}

impl Bench {
    /// A namespace with ServiceAccount `runner` bound to cluster-admin, and its kubeconfig.
    async fn namespace(&self, prefix: &str) -> Result<(String, PathBuf)> {
        let ns = self.cp.namespace(prefix).await?;
        let kubeconfig = self.cp.service_account_kubeconfig(&ns, "runner").await?;
        let crbs: Api<ClusterRoleBinding> = Api::all(self.admin.clone());
        let crb: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-{ns}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
        }))?;
        crbs.create(&PostParams::default(), &crb).await?;
        // The authorizer sees a new binding through an informer: wait until it applies.
        let sa_client = client_from(&kubeconfig).await?;
        let probe: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sa_client, &ns);
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Err(e) = probe.list(&Default::default()).await {
            if Instant::now() > deadline {
                bail!("ServiceAccount runner in {ns} never got its rights: {e}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((ns, kubeconfig))
    }

    fn command(
        &self,
        tool: Tool,
        kubeconfig: &Path,
        ns: &str,
        name: &str,
    ) -> Result<std::process::Command> {
        let mut cmd;
        match tool {
            Tool::ArgoRunner => {
                cmd = std::process::Command::new(runner_binary("argo-runner"));
                cmd.env_clear()
                    .env("RUNNER_INPUT_MANIFEST_PATH", &self.manifest)
                    .env("RUNNER_CONTEXT_NAME", name)
                    .env("RUNNER_CONTEXT_PLATFORM_NAMESPACE", ns);
            }
            Tool::ArgoCli => {
                let bin = self.argo_cli.as_ref().context("argo CLI not built")?;
                cmd = std::process::Command::new(bin);
                cmd.env_clear()
                    .arg("submit")
                    .arg(&self.manifest)
                    .args(["--name", name, "--wait", "-n", ns, "--kubeconfig"])
                    .arg(kubeconfig);
            }
        }
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.cp.dir())
            .env("KUBECONFIG", kubeconfig);
        Ok(cmd)
    }

    /// One run of `tool`: spawn, see the Workflow appear, complete it, see the process exit.
    async fn single(&self, tool: Tool, rep: usize) -> Result<Value> {
        let (ns, kubeconfig) = self
            .namespace(&format!("single-{}-{rep}", tool.key()))
            .await?;
        let name = "bench";
        create_status_configmap(&self.admin, &ns, name).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let api = workflows(&self.admin, &ns);
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
        let since = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
            .to_string();
        let t0 = Instant::now();
        let (_, mut exited) = spawn_measured(self.command(tool, &kubeconfig, &ns, name)?)?;
        let seen = tokio::select! {
            seen = rx => seen?,
            e = &mut exited => bail!("{} exited before its Workflow was seen: {:?}", tool.label(), e?),
        };
        watch.abort();
        patch_workflow_status(
            &self.admin,
            &ns,
            name,
            json!({"phase": "Running", "startedAt": now()}),
        )
        .await?;
        // Give the process time to be waiting, so the figure is the notice alone.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t2 = Instant::now();
        patch_workflow_status(
            &self.admin,
            &ns,
            name,
            json!({"phase": "Succeeded", "finishedAt": now()}),
        )
        .await?;
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
            "maxRssKiB": done.max_rss_kib,
            "cpuMs": ms(done.cpu),
            "apiRequests": self.audit_counts(&ns, &since),
        }))
    }

    /// Requests made by ServiceAccount `runner` of `ns`, by "verb resource".
    fn audit_counts(&self, ns: &str, since: &str) -> BTreeMap<String, u64> {
        let user = format!("system:serviceaccount:{ns}:runner");
        let mut counts = BTreeMap::new();
        for line in self.cp.audit_log().lines() {
            let Ok(ev) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            // RFC 3339 UTC timestamps with fixed precision compare as strings.
            let at = ev["requestReceivedTimestamp"].as_str().unwrap_or_default();
            if ev["stage"] != "ResponseComplete"
                || ev["user"]["username"] != user.as_str()
                || at < since
            {
                continue;
            }
            let resource = ev["objectRef"]["resource"].as_str().unwrap_or("(none)");
            let verb = ev["verb"].as_str().unwrap_or("?");
            *counts.entry(format!("{verb} {resource}")).or_insert(0) += 1;
        }
        counts
    }

    /// N processes of `tool` at once, each with its own Workflow; the driver completes each
    /// Workflow as soon as it sees it.
    async fn scale(&self, tool: Tool, n: usize) -> Result<Value> {
        let (ns, kubeconfig) = self.namespace(&format!("scale-{}-{n}", tool.key())).await?;
        for i in 0..n {
            create_status_configmap(&self.admin, &ns, &format!("wf-{i}")).await?;
        }
        let admin = self.admin.clone();
        let api = workflows(&admin, &ns);
        let driver_ns = ns.clone();
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
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for i in 0..n {
            handles
                .push(spawn_measured(self.command(tool, &kubeconfig, &ns, &format!("wf-{i}"))?)?.1);
        }
        let mut failures = 0;
        let mut cpu = Duration::ZERO;
        let mut last = t0;
        for h in handles {
            let e = tokio::time::timeout(Duration::from_secs(600), h)
                .await
                .context("did not exit")??;
            failures += usize::from(e.code != 0);
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
        }))
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// User + system CPU of process `pid` from `/proc/<pid>/stat` (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    json!({"cores": cores, "memoryGiB": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0, "cpu": cpu})
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let out_dir = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench"));
    std::fs::create_dir_all(&out_dir)?;
    let (reps, scale): (usize, Vec<usize>) = if smoke {
        (1, vec![1])
    } else {
        (REPETITIONS, SCALE_FULL.to_vec())
    };

    let tools = Tools::locate()?;
    let argo_cli = std::env::var("KAR_ARGO_CLI")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists());
    eprintln!("bench: starting the control plane");
    let cp = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let admin = cp.client().await?;
    let bench = Bench {
        cp,
        admin,
        argo_cli: argo_cli.clone(),
        manifest: tools.argo_example("hello-world"),
    };

    let mut tool_list = vec![Tool::ArgoRunner];
    if argo_cli.is_some() {
        tool_list.push(Tool::ArgoCli);
    }
    // One unmeasured run first: the API server's first requests from a new ServiceAccount token
    // (authentication and authorization caches) are slower, and would skew whichever tool
    // happened to run first.
    eprintln!("bench: warm-up run (not measured)");
    bench.single(Tool::ArgoRunner, 0).await?;
    let mut results = serde_json::Map::new();
    for &tool in &tool_list {
        let bin = match tool {
            Tool::ArgoRunner => runner_binary("argo-runner"),
            Tool::ArgoCli => argo_cli.clone().unwrap(),
        };
        let mut singles = Vec::new();
        for rep in 0..reps {
            eprintln!("bench: {} run {}/{reps}", tool.label(), rep + 1);
            singles.push(bench.single(tool, rep).await?);
        }
        let med = |k: &str| {
            median(
                singles
                    .iter()
                    .map(|s| s[k].as_f64().unwrap_or(0.0))
                    .collect(),
            )
        };
        let mut scales = Vec::new();
        let peak_kib = med("maxRssKiB").max(1.0);
        for &n in &scale {
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
            scales.push(bench.scale(tool, n).await?);
        }
        results.insert(
            tool.key().into(),
            json!({
                "label": tool.label(),
                "binaryBytes": file_size(&bin),
                "coldStartMs": med("coldStartMs"),
                "completionNoticeMs": med("completionNoticeMs"),
                "maxRssKiB": med("maxRssKiB"),
                "cpuMs": med("cpuMs"),
                "apiRequests": singles.last().map(|s| s["apiRequests"].clone()),
                "runs": singles,
                "scale": scales,
            }),
        );
    }
    let report = json!({
        "machine": machine(),
        "smoke": smoke,
        "repetitions": reps,
        "peers": {
            "capact": "not built: the Go module proxy answers 403 Forbidden for capact.io/capact (and github.com/capactio/capact) at every version, so Capact's argo-runner cannot be built here",
            "argo-cli": argo_cli.as_ref().map(|p| p.display().to_string()),
        },
        "results": results,
    });
    std::fs::write(
        out_dir.join("bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let md = markdown(&report);
    std::fs::write(out_dir.join("bench.md"), &md)?;
    println!("{md}");
    eprintln!("bench: wrote {}", out_dir.display());
    Ok(())
}

fn markdown(r: &Value) -> String {
    let m = &r["machine"];
    let mut s = format!(
        "Machine: {} cores, {} GiB, {}. Repetitions: {} (medians).\n\n",
        m["cores"],
        m["memoryGiB"],
        m["cpu"].as_str().unwrap_or(""),
        r["repetitions"]
    );
    let results = r["results"].as_object().cloned().unwrap_or_default();
    let ours = &results.get("argo-runner").cloned().unwrap_or_default();
    let rows = [
        ("binary size (bytes)", "binaryBytes"),
        ("cold start to Workflow seen (ms)", "coldStartMs"),
        ("completion notice to exit (ms)", "completionNoticeMs"),
        ("peak RSS (KiB)", "maxRssKiB"),
        ("CPU time per run (ms)", "cpuMs"),
    ];
    s.push_str("| figure |");
    for v in results.values() {
        s.push_str(&format!(" {} |", v["label"].as_str().unwrap_or("")));
    }
    for (k, v) in &results {
        if k != "argo-runner" {
            s.push_str(&format!(" ours / {} |", v["label"].as_str().unwrap_or("")));
        }
    }
    s.push_str("\n|---|");
    for _ in 0..(results.len() * 2 - 1) {
        s.push_str("---|");
    }
    s.push('\n');
    for (label, key) in rows {
        s.push_str(&format!("| {label} |"));
        for v in results.values() {
            s.push_str(&format!(" {} |", v[key]));
        }
        for (k, v) in &results {
            if k != "argo-runner" {
                s.push_str(&format!(" {} |", ratio(&ours[key], &v[key])));
            }
        }
        s.push('\n');
    }
    s.push_str("\nAPI requests per run (verb resource: count):\n\n");
    for v in results.values() {
        s.push_str(&format!(
            "- {}: {}\n",
            v["label"].as_str().unwrap_or(""),
            v["apiRequests"]
        ));
    }
    s.push_str(
        "\nScale (N at once; wall ms, process CPU ms, API server CPU ms, failures):\n\n| N |",
    );
    for v in results.values() {
        s.push_str(&format!(" {} |", v["label"].as_str().unwrap_or("")));
    }
    s.push_str("\n|---|");
    for _ in 0..results.len() {
        s.push_str("---|");
    }
    s.push('\n');
    let ns: Vec<Value> = ours["scale"].as_array().cloned().unwrap_or_default();
    for (i, row) in ns.iter().enumerate() {
        s.push_str(&format!("| {} |", row["n"]));
        for v in results.values() {
            let c = &v["scale"][i];
            if c.get("skipped").is_some() {
                s.push_str(" skipped (memory) |");
                continue;
            }
            s.push_str(&format!(
                " {} / {} / {} / {} |",
                c["wallMs"], c["processCpuMs"], c["apiServerCpuMs"], c["failures"]
            ));
        }
        s.push('\n');
    }
    s.push_str(&format!(
        "\nCapact: {}\n",
        r["peers"]["capact"].as_str().unwrap_or("")
    ));
    s
}

fn ratio(ours: &Value, peer: &Value) -> String {
    match (ours.as_f64(), peer.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}
