//! The linux/arm64 images' binaries, as `hack/build-images.sh` puts them in the images' build
//! contexts (`target/images/context/linux-arm64/`: both runners, cross-built, and helm), run on
//! this machine under qemu-user (Debian's `qemu-user-static`, invoked directly: no binfmt_misc
//! registration is needed). They must be static aarch64 executables, answer `--version` and
//! `--help` exactly as the native build does, and carry out a dry run as `deploy/` runs them,
//! with nothing but their ServiceAccount's token against a bare local API server: read the
//! environment and the input manifest, call the API server, report the status. helm-runner's
//! dry run uses the arm64 helm, also under qemu.
//!
//! Where there is no arm64 build or no qemu, each test records that it skipped (the summary of
//! `hack/test.sh` counts it apart, never as passed), unless `KAR_REQUIRE_ARM64=1` (which
//! `hack/test.sh` sets under CI), which fails it instead. `KAR_ARM64_DIR` names another
//! directory laid out like the contexts (`<runner>/<runner>`, `helm-runner/helm`);
//! `KAR_QEMU_AARCH64` another emulator (by default `qemu-aarch64-static` on `PATH`). Needs
//! `cargo build --bins` (the native runners to compare with).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use action_runner::status::Phase;
use action_runner_tests::cluster::record_skip_because;
use action_runner_tests::controllers::workflows;
use action_runner_tests::deployed_runner::DeployedRunner;
use action_runner_tests::process::{RunnerCommand, RunnerOutput, collect};
use action_runner_tests::tools::{repo_root, runner_binary};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

const RUNNERS: [&str; 2] = ["argo-runner", "helm-runner"];

/// Where the arm64 binaries and the emulator are.
struct Arm64 {
    dir: PathBuf,
    qemu: PathBuf,
}

impl Arm64 {
    /// The arm64 build and qemu, or `None` (the skip recorded) when either is missing.
    ///
    /// # Panics
    /// When one is missing but `KAR_REQUIRE_ARM64=1`.
    fn get(test: &str) -> Option<Arm64> {
        let dir = std::env::var_os("KAR_ARM64_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/images/context/linux-arm64"));
        let qemu = match std::env::var_os("KAR_QEMU_AARCH64") {
            Some(q) => Some(PathBuf::from(q)),
            None => std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join("qemu-aarch64-static"))
                    .find(|q| q.is_file())
            }),
        };
        let missing: Vec<PathBuf> = RUNNERS
            .iter()
            .map(|r| dir.join(r).join(r))
            .chain([dir.join("helm-runner/helm")])
            .filter(|b| !b.is_file())
            .collect();
        let why = match (&qemu, missing.first()) {
            (_, Some(b)) => format!(
                "no linux/arm64 build ({} is missing; hack/build-images.sh makes it, {})",
                b.display(),
                platforms_note(&dir)
            ),
            (None, None) => "no qemu-aarch64-static (Debian: qemu-user-static)".to_string(),
            (Some(qemu), None) => {
                return Some(Arm64 {
                    dir,
                    qemu: qemu.clone(),
                });
            }
        };
        assert!(
            std::env::var("KAR_REQUIRE_ARM64").as_deref() != Ok("1"),
            "KAR_REQUIRE_ARM64=1 but {why}"
        );
        record_skip_because(&format!("arm64_qemu::{test}"), &why);
        None
    }

    fn runner(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(name)
    }

    fn helm(&self) -> PathBuf {
        self.dir.join("helm-runner/helm")
    }

    /// `bin` under qemu with `args`, in an environment holding only `PATH`.
    fn run(&self, bin: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.qemu)
            .arg(bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .expect("qemu starts");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// `cmd` (a runner as its Job's pod would run it) with its binary swapped for the arm64 one,
    /// under qemu; at most 120 s.
    async fn run_runner(&self, cmd: &RunnerCommand, runner: &str) -> RunnerOutput {
        let child = tokio::process::Command::new(&self.qemu)
            .arg(self.runner(runner))
            .env_clear()
            .envs(&cmd.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("qemu starts");
        collect(child).await.unwrap()
    }
}

/// What `hack/build-images.sh` said of the platforms it built, for a skip's reason.
fn platforms_note(dir: &Path) -> String {
    // `<images>/context/linux-arm64` -> `<images>/platforms.txt`.
    let file = dir.ancestors().nth(2).unwrap_or(dir).join("platforms.txt");
    match std::fs::read_to_string(&file) {
        Ok(text) => match text.lines().find(|l| l.starts_with("linux/arm64")) {
            Some(line) => format!("whose last run said: {line}"),
            None => "whose last run did not build linux/arm64".to_string(),
        },
        Err(_) => "which has not run here".to_string(),
    }
}

/// The ELF header's facts that matter here: the machine (183: aarch64) and whether a program
/// interpreter (a dynamic loader) is named, i.e. whether the executable is dynamically linked.
fn elf_machine_and_interpreter(bin: &Path) -> (u16, bool) {
    let b = std::fs::read(bin).unwrap();
    assert!(
        b.len() > 64 && b[..4] == *b"\x7fELF" && b[4] == 2 && b[5] == 1,
        "{}: not a 64-bit little-endian ELF file",
        bin.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == PT_INTERP
    });
    (u16_at(0x12), interp)
}

/// Each binary is a static aarch64 executable; under qemu each runner's `--version`, `-V`,
/// `--help` and `-h` print exactly what the native build prints, and helm reports its version.
#[test]
fn the_arm64_binaries_start_and_answer_as_the_native_ones() {
    let Some(arm) = Arm64::get("the_arm64_binaries_start_and_answer_as_the_native_ones") else {
        return;
    };
    const EM_AARCH64: u16 = 183;
    for bin in RUNNERS
        .map(|r| arm.runner(r))
        .into_iter()
        .chain([arm.helm()])
    {
        assert_eq!(
            elf_machine_and_interpreter(&bin),
            (EM_AARCH64, false),
            "{}: (ELF machine, has a dynamic loader)",
            bin.display()
        );
    }
    for r in RUNNERS {
        for flag in ["--version", "-V", "--help", "-h"] {
            let native = Command::new(runner_binary(r))
                .arg(flag)
                .env_clear()
                .output()
                .unwrap();
            let (code, stdout, stderr) = arm.run(&arm.runner(r), &[flag]);
            assert_eq!((code, stderr.as_str()), (0, ""), "arm64 {r} {flag}");
            assert_eq!(
                stdout,
                String::from_utf8_lossy(&native.stdout),
                "arm64 {r} {flag}"
            );
        }
        println!(
            "arm64 {r} --version under qemu: {}",
            arm.run(&arm.runner(r), &["-V"])
                .1
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    let (code, stdout, stderr) = arm.run(&arm.helm(), &["version", "--short"]);
    assert_eq!(code, 0, "arm64 helm version: {stderr}");
    let pinned = std::fs::read_to_string(repo_root().join("deploy/images/helm.lock")).unwrap();
    let version = pinned
        .lines()
        .find_map(|l| l.strip_prefix("HELM_VERSION="))
        .expect("HELM_VERSION in deploy/images/helm.lock");
    assert!(
        stdout.trim().split('+').next() == Some(version),
        "arm64 helm version --short: {stdout}"
    );
}

/// argo-runner for arm64, under qemu, as `deploy/argo-runner`'s Job runs it, with a dry run:
/// it reads its variables and the input manifest, has the API server check the Workflow
/// (`dryRun=All`) with only its ServiceAccount's token, and reports `Succeeded` (dry run) to its
/// status ConfigMap; nothing is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_runner_for_arm64_dry_runs_against_the_api_server() {
    let Some(arm) = Arm64::get("argo_runner_for_arm64_dry_runs_against_the_api_server") else {
        return;
    };
    let d = DeployedRunner::new("argo-runner", "arm64-argo", |_| {}, None).await;
    let cmd = d.command().var("RUNNER_CONTEXT_DRY_RUN", Some("true"));
    let out = arm.run_runner(&cmd, "argo-runner").await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let status = d.env.expect_status(&d.context_name()).await;
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert!(status.dry_run, "{status:?}");
    assert!(
        workflows(&d.env.client, &d.env.ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "a dry run creates no Workflow"
    );
    d.assert_nothing_denied();
    println!("arm64 argo-runner dry run: {}", status.message);
}

/// helm-runner for arm64, under qemu, as `deploy/helm-runner`'s Job runs it, with a dry run of
/// its example chart through the arm64 helm (also under qemu): it reports that the release would
/// be installed, and installs nothing; nothing is denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_runner_for_arm64_dry_runs_against_the_api_server() {
    let Some(arm) = Arm64::get("helm_runner_for_arm64_dry_runs_against_the_api_server") else {
        return;
    };
    let d = DeployedRunner::new("helm-runner", "arm64-helm", |_| {}, None).await;
    // The runner executes helm itself: without a binfmt_misc registration an aarch64 helm
    // needs qemu in front of it.
    let helm = d.env.dir.path().join("helm-under-qemu");
    std::fs::write(
        &helm,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            arm.qemu.display(),
            arm.helm().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = d
        .command()
        .var("RUNNER_CONTEXT_DRY_RUN", Some("true"))
        .var("RUNNER_HELM_BINARY_PATH", Some(&helm.display().to_string()));
    let out = arm.run_runner(&cmd, "helm-runner").await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let status = d.env.expect_status(&d.context_name()).await;
    assert_eq!(status.phase, Phase::Succeeded, "{status:?}");
    assert!(status.dry_run, "{status:?}");
    assert!(status.message.contains("would be installed"), "{status:?}");
    let releases: Api<Secret> = Api::namespaced(d.env.client.clone(), &d.env.ns);
    let owned = releases
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(owned.items.is_empty(), "a dry run stores no release");
    d.assert_nothing_denied();
    println!("arm64 helm-runner dry run: {}", status.message);
}
