//! Whether `hack/demo.sh` runs the real-cluster demo or the bare API server one, decided on a
//! machine without the cluster's packages (no containerd on `PATH`): as root on Linux it
//! installs first (`hack/install-tools.sh`) and then starts the cluster; only where no cluster
//! can start (not Linux, not root, nothing to install the packages with) it runs the bare demo,
//! saying why in one line.
//!
//! Nothing real runs: the decision is `hack/cluster.sh can-start` itself, with `uname` and `id`
//! faked on a `PATH` of a few basic commands; the demo's flow is `hack/demo.sh` itself in a copy
//! of `hack/` whose other scripts (`install-tools.sh`, `build-images.sh`, `cluster.sh` but for
//! `can-start`) and `cargo` are stand-ins that only write down that they were called.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` found on this process's `PATH`.
fn which(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!{}\n{body}", which("bash").display())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A machine: a directory of commands that is the whole `PATH` (a few basic ones, `uname` and
/// `id` saying `os` and `uid`, `apt-get` when `apt`; never containerd), and a log the stand-ins
/// write to.
struct Machine {
    dir: tempfile::TempDir,
}

impl Machine {
    fn new(os: &str, uid: u32, apt: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for c in [
            "bash", "dirname", "date", "mktemp", "awk", "cat", "rm", "sed", "grep", "env",
        ] {
            symlink(which(c), bin.join(c)).unwrap();
        }
        script(&bin.join("uname"), &format!("echo {os}\n"));
        script(&bin.join("id"), &format!("echo {uid}\n"));
        let log = "echo \"$(basename \"$0\") $*\" >>\"$KAR_TEST_LOG\"\n";
        symlink(which("basename"), bin.join("basename")).unwrap();
        if apt {
            script(&bin.join("apt-get"), &format!("{log}exit 1\n"));
        }
        script(&bin.join("cargo"), log);
        Machine { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("calls.log")
    }

    /// What the stand-ins were called with, one call a line.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Runs `bash SCRIPT ARGS` on this machine, with `env` added.
    fn run(&self, script: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(which("bash"))
            .arg(script)
            .args(args)
            .env_clear()
            .env("PATH", self.path())
            .env("HOME", self.dir.path())
            .env("KAR_TEST_LOG", self.log_file())
            .env("KAR_PHASES", self.dir.path().join("phases"))
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// A copy of `hack/` holding the real `demo.sh`, `lib.sh`, `control-plane.sh`, `cluster/`
    /// and `cluster.sh` (as `real-cluster.sh`) and stand-ins for the rest; returns the copy's
    /// `demo.sh`. The stand-in `install-tools.sh` notes that the packages are installed; the
    /// stand-in `cluster.sh` hands `can-start` to the real one, fails `check` as the real one
    /// does on a fresh machine (containerd missing) until they are, and then with
    /// `$FAKE_CHECK_FAILS` when that is set, and answers `up` with `exit 0`, which the demo
    /// evaluates: the run ends there, before anything would touch a cluster.
    fn demo(&self) -> PathBuf {
        let hack = self.dir.path().join("repo/hack");
        std::fs::create_dir_all(&hack).unwrap();
        for (from, to) in [
            ("demo.sh", "demo.sh"),
            ("lib.sh", "lib.sh"),
            ("control-plane.sh", "control-plane.sh"),
            ("cluster.sh", "real-cluster.sh"),
        ] {
            std::fs::copy(repo().join("hack").join(from), hack.join(to)).unwrap();
        }
        // The parts the real cluster.sh sources.
        std::fs::create_dir(hack.join("cluster")).unwrap();
        for part in std::fs::read_dir(repo().join("hack/cluster")).unwrap() {
            let part = part.unwrap().path();
            std::fs::copy(&part, hack.join("cluster").join(part.file_name().unwrap())).unwrap();
        }
        let log = "echo \"$(basename \"$0\") $*\" >>\"$KAR_TEST_LOG\"\n";
        script(
            &hack.join("install-tools.sh"),
            &format!("{log}[[ ${{1:-}} == --print ]] || : >\"$KAR_TEST_LOG.installed\"\n"),
        );
        script(&hack.join("build-images.sh"), log);
        script(
            &hack.join("cluster.sh"),
            &format!(
                "{log}case $1 in\n\
                 \x20 can-start) exec bash \"$(dirname \"$0\")/real-cluster.sh\" can-start ;;\n\
                 \x20 check)\n\
                 \x20   [[ -f $KAR_TEST_LOG.installed ]] || \
                         {{ echo 'containerd is missing (hack/install-tools.sh installs it as root)'; exit 1; }}\n\
                 \x20   [[ -z ${{FAKE_CHECK_FAILS:-}} ]] || {{ echo \"$FAKE_CHECK_FAILS\"; exit 1; }} ;;\n\
                 \x20 up) echo 'exit 0' ;;\n\
                 esac\n"
            ),
        );
        hack.join("demo.sh")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `hack/cluster.sh can-start`: exit 0 (install, then start the cluster) or 1 with the reason.
fn can_start(machine: &Machine, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["can-start"];
    all.extend_from_slice(args);
    let out = machine.run(&repo().join("hack/cluster.sh"), &all, &[]);
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(text(&out.stdout)),
        other => panic!("can-start exited {other:?}: {}", text(&out.stderr)),
    }
}

#[test]
fn can_start_is_install_then_cluster_as_root_on_linux_only() {
    // The facts from `uname -s` and `id -u`, containerd not on PATH.
    assert_eq!(can_start(&Machine::new("Linux", 0, true), &[]), Ok(()));
    let not_root = can_start(&Machine::new("Linux", 1000, true), &[]).unwrap_err();
    assert_eq!(
        not_root,
        "not root (the kubelet, containerd and the bridge need root)\n"
    );
    assert_eq!(
        can_start(&Machine::new("Darwin", 0, true), &[]),
        Err("not Linux\n".into())
    );
    // Root on Linux, but nothing to install the packages with.
    let no_apt = can_start(&Machine::new("Linux", 0, false), &[]).unwrap_err();
    assert!(
        no_apt.starts_with("containerd is missing and cannot be installed here"),
        "{no_apt}"
    );
    assert_eq!(no_apt.lines().count(), 1, "{no_apt}");
    // The facts given as arguments.
    let machine = Machine::new("Darwin", 1000, true);
    assert_eq!(can_start(&machine, &["Linux", "0"]), Ok(()));
    assert!(can_start(&machine, &["Linux", "1000"]).is_err());
    assert!(machine.calls().is_empty(), "{:?}", machine.calls());
}

/// The one line the demo says when it runs the bare demo, if it says one.
fn fallback_line(out: &Output) -> Option<String> {
    text(&out.stderr)
        .lines()
        .find(|l| l.starts_with("demo: no local cluster"))
        .map(String::from)
}

const BARE: [&str; 3] = [
    "install-tools.sh ",
    "cargo build --bins",
    "cargo run -q -p action-runner-tests --bin demo --",
];

#[test]
fn demo_installs_then_starts_the_cluster_as_root_on_linux() {
    let machine = Machine::new("Linux", 0, true);
    let out = machine.run(&machine.demo(), &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(fallback_line(&out), None, "{}", text(&out.stderr));
    assert_eq!(
        machine.calls(),
        [
            "cluster.sh can-start",
            "install-tools.sh ",
            "install-tools.sh --print",
            "cluster.sh check",
            "build-images.sh ",
            "cluster.sh up",
        ]
    );
}

#[test]
fn demo_runs_the_bare_demo_where_no_cluster_can_start_saying_why() {
    for (os, uid, apt, why) in [
        (
            "Linux",
            1000,
            true,
            "not root (the kubelet, containerd and the bridge need root)",
        ),
        ("Darwin", 0, true, "not Linux"),
        (
            "Linux",
            0,
            false,
            "containerd is missing and cannot be installed here",
        ),
    ] {
        let machine = Machine::new(os, uid, apt);
        let out = machine.run(&machine.demo(), &[], &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let line = fallback_line(&out).expect("the demo says why");
        assert!(
            line.starts_with(&format!("demo: no local cluster can start here: {why}")),
            "{line}"
        );
        assert!(
            line.ends_with("; running the bare API server demo instead"),
            "{line}"
        );
        let mut want = vec!["cluster.sh can-start"];
        want.extend(BARE);
        assert_eq!(machine.calls(), want, "{os} uid {uid}");
    }
}

#[test]
fn demo_falls_back_after_installing_only_for_what_installing_cannot_change() {
    let machine = Machine::new("Linux", 0, true);
    let out = machine.run(
        &machine.demo(),
        &[],
        &[("FAKE_CHECK_FAILS", "no memory cgroup")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        fallback_line(&out).as_deref(),
        Some(
            "demo: no local cluster can start here, even with the tools installed: no memory \
             cgroup; running the bare API server demo instead"
        )
    );
    let mut want = vec![
        "cluster.sh can-start",
        "install-tools.sh ",
        "install-tools.sh --print",
        "cluster.sh check",
    ];
    want.extend(BARE);
    assert_eq!(machine.calls(), want);
}
