//! Benchmark: our runners side by side with the tools a user would pick instead, on one local
//! control plane, in one run. Writes `bench.json` and `bench.md` into the output directory.
//!
//! Usage: `hack/bench.sh [--images] [OPTIONS]`, which builds the release binaries and the peers
//! first, or `cargo run --release -p action-runner-bench -- [OPTIONS]`; the options are those of
//! [`Args`] (`bench --help`), and `bench/README.md` describes the whole. `--smoke`: N = 1 and
//! one repetition, so that CI keeps the benchmark from rotting. `--reps`, `--scale` and `--only`
//! narrow a run down for investigating one figure.
//!
//! Argo ([`argo`]), for `argo-runner`, `argo submit --wait` and Capact's `argo-runner`:
//! binary size; cold start (spawn until the driver's watch shows the Workflow, ms); completion
//! notice (the driver's status patch to `Succeeded` until the process exited, ms); peak RSS
//! (KiB) and CPU time (user + system, ms) over a whole run; API requests per run, by verb and
//! resource, from the API server's audit log (each run authenticates as its own
//! ServiceAccount); scale: N at once, each creating and waiting for its own Workflow while the
//! driver completes them (wall time until all exited, summed CPU of the processes, API server
//! CPU, failures).
//!
//! Helm ([`helm`]), for `helm-runner`, `helm upgrade --install --wait` and Capact's
//! `helm-runner`: wall time, peak RSS of the process tree and CPU time of an install and of an
//! upgrade of the same chart; API requests.
//!
//! Capact's runners take part when `KAR_CAPACT_ARGO_RUNNER` / `KAR_CAPACT_HELM_RUNNER` name
//! their binaries (built outside this repository; see `bench/README.md`).
//!
//! Figures are medians over the repetitions, after one unmeasured warm-up run of each side.

mod argo;
mod audit;
mod capact;
mod cluster;
mod helm;
mod kwok;
mod measure;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use action_runner_tests::control_plane::{ControlPlane, client_from};
use action_runner_tests::test_env::TestEnv;
use action_runner_tests::tools::{Tools, repo_root};
use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use serde_json::json;

use measure::file_size;

const REPETITIONS: usize = 5;
const SCALE_FULL: [usize; 4] = [1, 10, 50, 200];
/// N for `--cluster`: Jobs on the one-node cluster (the kubelet runs at most 110 pods).
const SCALE_CLUSTER: [usize; 2] = [10, 50];

/// The variables the bench reads, for `--help`.
const ENVIRONMENT: &str = "\
Environment:
  KAR_ETCD, KAR_KUBE_APISERVER, KAR_ARGO_DIR, KAR_HELM
      The pinned tools; when one is unset, all are read from `hack/install-tools.sh --print`.
      KAR_HELM is the Helm CLI measured, and the one helm-runner runs.
  KAR_ARGO_CLI
      The Argo CLI to compare with (`hack/install-tools.sh --peers` builds it); unset: no
      `argo submit --wait` column.
  KAR_CAPACT_ARGO_RUNNER, KAR_CAPACT_HELM_RUNNER
      Capact's Go runners, built by hand (see bench/README.md); unset: no Capact columns.
  KAR_APISERVER_ARGS
      More kube-apiserver flags for the local control plane, separated by whitespace
      (e.g. `--watch-cache-sizes=secrets#0`).
  KAR_BENCH_AUDIT=FILE
      Keep the API server's audit log (every request of every run, with its times) in FILE.
  KAR_BENCH_STDERR=DIR
      Keep each measured run's whole standard error as DIR/<pid>.log.
  RUST_LOG
      Passed on to the runners (with KAR_BENCH_STDERR, to see where a run's time goes).
  KAR_KWOK, KAR_KWOK_DIR
      --kwok: KWOK's binary and its module's directory (its Stages), from
      `hack/install-tools.sh --kwok`.
  KAR_CLUSTER_KUBECONFIG, KAR_ARGO_CLI_VERSION, KAR_ARGO_VERSION
      --cluster and --kwok: the running local cluster (`hack/cluster.sh up`), the version of the Argo CLI
      image, and the Argo version recorded in the report.

argo-runner and helm-runner are taken from this binary's own directory: build them there first
(`cargo build --release --bins`; hack/bench.sh does, and builds the peers).";

/// Benchmark our runners against the tools a user would pick instead, on one local control plane
///
/// argo-runner against `argo submit --wait` and Capact's argo-runner (cold start, completion
/// notice, peak RSS, CPU time, API requests, N at once); helm-runner against `helm upgrade
/// --install` and Capact's helm-runner (install and upgrade, with and without --wait: wall time,
/// peak RSS, CPU time, API requests). Figures are medians over the repetitions, after one
/// unmeasured warm-up run; they are printed and written as JSON and markdown, never asserted.
#[derive(Debug, Parser)]
#[command(name = "bench", version, after_long_help = ENVIRONMENT)]
struct Args {
    /// Smoke run: N = 1 and one repetition, so that CI keeps the benchmark from rotting (its
    /// figures mean little); --reps and --scale still override
    #[arg(long)]
    smoke: bool,

    /// Where to write bench.json and bench.md (bench-cluster.json and bench-cluster.md with
    /// --cluster); created if missing [default: target/bench in the repository]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Repetitions of each single-run figure (their median is reported) [default: 5; 1 with
    /// --smoke]
    #[arg(long, value_name = "R", value_parser = positive)]
    reps: Option<usize>,

    /// How many processes at once in the Argo scale runs (Jobs with --cluster), comma separated
    /// [default: 1,10,50,200; 1 with --smoke; 10,50 with --cluster]
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = positive)]
    scale: Option<Vec<usize>>,

    /// Measure one side only
    #[arg(long, value_enum, value_name = "SIDE")]
    only: Option<Side>,

    /// Instead of the local control plane: N argo-runner Jobs, then N Argo CLI Jobs, at once on
    /// the real one-node cluster under Argo's real controller, for each N of --scale; writes
    /// bench-cluster.json and bench-cluster.md (--smoke, --reps and --only do not apply)
    #[arg(long)]
    cluster: bool,

    /// Instead: N actions at once as processes, each with a ServiceAccount token of its own,
    /// against the local cluster's control plane and Argo's real controller, their pods on
    /// simulated nodes (KWOK): argo-runner at N = 10, 100, 1000, the Argo CLI and helm-runner
    /// at 10, 100 (--scale: these N for all three, the CLI and helm-runner at most 100);
    /// writes bench-kwok.json and bench-kwok.md
    #[arg(long, conflicts_with = "cluster")]
    kwok: bool,
}

/// What `--only` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Side {
    /// argo-runner and its peers
    Argo,
    /// helm-runner and its peers
    Helm,
}

/// A count of 1 or more (surrounding whitespace allowed, as in `--scale "1, 10"`).
fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: expected a whole number")),
    }
}

/// A [`TestEnv`] on the bench's control plane for one run, named after `prefix`, with
/// ServiceAccount `runner` bound to cluster-admin; returns it with that ServiceAccount's
/// kubeconfig, which the tool under test runs with (so the audit log tells its requests apart:
/// [`audit`]).
pub async fn runner_env(cp: &'static ControlPlane, prefix: &str) -> Result<(TestEnv, PathBuf)> {
    let env = TestEnv::on_control_plane(cp, prefix).await?;
    let ns = &env.ns;
    let kubeconfig = cp.service_account_kubeconfig(ns, "runner").await?;
    let crbs: Api<ClusterRoleBinding> = Api::all(env.client.clone());
    let crb: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}],
    }))?;
    crbs.create(&PostParams::default(), &crb).await?;
    // The authorizer sees a new binding through an informer: wait until it applies.
    let sa_client = client_from(&kubeconfig).await?;
    let probe: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(sa_client, ns);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = probe.list(&Default::default()).await {
        if Instant::now() > deadline {
            bail!("ServiceAccount runner in {ns} never got its rights: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((env, kubeconfig))
}

/// `bin` with an empty environment but `PATH`, `HOME` (the control plane's directory) and
/// `KUBECONFIG`.
pub fn tool_command(env: &TestEnv, bin: &Path, kubeconfig: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", env.control_plane().dir())
        .env("KUBECONFIG", kubeconfig);
    // For profiling a run (with `KAR_BENCH_STDERR`, see `measure::spawn_measured`).
    if let Ok(filter) = std::env::var("RUST_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    cmd
}

/// A path from an environment variable, if it names an existing file.
fn binary_from_env(var: &str) -> Option<PathBuf> {
    std::env::var(var)
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| repo_root().join("target/bench"));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create --out {}", out_dir.display()))?;

    if args.kwok {
        let plan = match &args.scale {
            None => kwok::Plan::full(),
            Some(scale) => {
                let small: Vec<usize> = scale.iter().copied().filter(|&n| n <= 100).collect();
                kwok::Plan {
                    argo: scale.clone(),
                    argo_cli: small.clone(),
                    helm: small,
                    ..kwok::Plan::full()
                }
            }
        };
        let report = json!({
            "machine": measure::machine(),
            "argoVersion": std::env::var("KAR_ARGO_VERSION").ok(),
            "kubernetesVersion": std::env::var("KAR_KUBERNETES_VERSION").ok(),
            "kwok": kwok::run(&plan, &out_dir).await?,
        });
        let md = report::kwok_markdown(&report);
        return write_report(&out_dir, "bench-kwok", &report, &md);
    }

    if args.cluster {
        let scale = args.scale.unwrap_or_else(|| SCALE_CLUSTER.to_vec());
        let report = json!({
            "machine": measure::machine(),
            "argoVersion": std::env::var("KAR_ARGO_VERSION").ok(),
            "cluster": cluster::run(&scale).await?,
        });
        let md = report::cluster_markdown(&report);
        return write_report(&out_dir, "bench-cluster", &report, &md);
    }

    let smoke = args.smoke;
    let reps = args.reps.unwrap_or(if smoke { 1 } else { REPETITIONS });
    let scale = args
        .scale
        .unwrap_or_else(|| if smoke { vec![1] } else { SCALE_FULL.to_vec() });
    let only = args.only;

    let tools = Tools::locate()?;
    eprintln!("bench: starting the control plane");
    let cp = tokio::task::spawn_blocking(ControlPlane::start_for_process).await??;

    let argo = argo::ArgoBench {
        cp,
        argo_cli: binary_from_env("KAR_ARGO_CLI"),
        capact: binary_from_env("KAR_CAPACT_ARGO_RUNNER"),
        manifest: tools.argo_example("hello-world"),
    };
    // One unmeasured run first: the API server's first requests from a new ServiceAccount token
    // (authentication and authorization caches) are slower, and would skew whichever tool
    // happened to run first.
    let mut argo_results = serde_json::Map::new();
    if only != Some(Side::Helm) {
        eprintln!("bench: warm-up run (not measured)");
        argo.single(argo::Tool::Ours, 0).await?;
    }
    let argo_tools = if only == Some(Side::Helm) {
        Vec::new()
    } else {
        argo.tools()
    };
    for (tool, v) in argo.measure(&argo_tools, reps, &scale).await? {
        argo_results.insert(tool.key().into(), v);
    }

    let helm = helm::HelmBench::new(
        cp,
        tools.helm.clone(),
        binary_from_env("KAR_CAPACT_HELM_RUNNER"),
    )?;
    let mut helm_results = serde_json::Map::new();
    let helm_tools = if only == Some(Side::Argo) {
        Vec::new()
    } else {
        helm.tools()
    };
    for (tool, mut v) in helm.measure(&helm_tools, reps).await? {
        // What ships: ours is the runner and the Helm CLI it runs.
        v["shippedBytes"] = match tool {
            helm::Tool::Ours => {
                json!(v["binaryBytes"].as_u64().unwrap_or(0) + file_size(&tools.helm).unwrap_or(0))
            }
            _ => v["binaryBytes"].clone(),
        };
        helm_results.insert(tool.key().into(), v);
    }

    // For profiling: `KAR_BENCH_AUDIT=FILE` keeps the API server's audit log (every request of
    // every run, with its received and completed timestamps).
    if let Some(file) = std::env::var_os("KAR_BENCH_AUDIT") {
        std::fs::write(&file, cp.audit_log())
            .with_context(|| format!("cannot write KAR_BENCH_AUDIT {}", file.to_string_lossy()))?;
    }

    let images: Vec<String> = std::fs::read_to_string(repo_root().join("target/images/sizes.txt"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let report = json!({
        "machine": measure::machine(),
        "smoke": smoke,
        "repetitions": reps,
        "peers": {
            "capact": capact::status(argo.capact.as_deref(), helm.capact.as_deref()),
            "argo-cli": argo.argo_cli.as_ref().map(|p| p.display().to_string()),
            "helm-cli": tools.helm.display().to_string(),
            "images": "Peers' images: not measured. Their official images (quay.io/argoproj/argocli, Helm's, ghcr.io/capactio) cannot be pulled here: this machine reaches no container registry. Compare the binary sizes above.",
        },
        "ratios": {
            "argo": measure::ratios(&argo_results, "argo-runner"),
            "helm": measure::ratios(&helm_results, "helm-runner"),
        },
        "argo": argo_results,
        "helm": helm_results,
        "images": images,
    });
    let md = report::markdown(&report);
    write_report(&out_dir, "bench", &report, &md)
}

/// Writes `<name>.json` and `<name>.md` into `dir` and prints the markdown.
fn write_report(dir: &Path, name: &str, report: &serde_json::Value, md: &str) -> Result<()> {
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    println!("{md}");
    eprintln!("bench: wrote {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn options_parse_as_hack_bench_sh_passes_them() {
        let a = parse(&["--smoke", "--out", "target/bench-smoke"]).unwrap();
        assert!(a.smoke && !a.cluster);
        assert_eq!(a.out, Some(PathBuf::from("target/bench-smoke")));
        assert_eq!((a.reps, a.scale, a.only), (None, None, None));

        let a = parse(&["--only", "argo", "--reps", "15", "--scale", "1, 10,50"]).unwrap();
        assert_eq!(a.only, Some(Side::Argo));
        assert_eq!(a.reps, Some(15));
        assert_eq!(a.scale, Some(vec![1, 10, 50]));

        let a = parse(&["--cluster", "--scale", "10"]).unwrap();
        assert!(a.cluster);
        assert_eq!(a.scale, Some(vec![10]));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--only", "both"][..],
            &["--reps", "0"],
            &["--reps", "x"],
            &["--scale", "1,,2"],
            &["--scale", "0"],
            &["--out"],
            &["--images"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }
}
