//! End-to-end tests of what a hostile chart or input file can do to the real `helm-runner`
//! (with the real helm, against a real kube-apiserver and etcd): nothing. A chart archive whose
//! `files/tok` is a symbolic link to a file on the runner's filesystem, rendered into a
//! ConfigMap by `.Files.Get`, is refused with exit 2 before anything reaches the cluster, and
//! the file's content is shown nowhere; so is a chart directory with such a link, and a gzip
//! bomb. A FIFO, `/dev/zero`, a directory or an oversize file given as `valuesFromFile` or
//! `RUNNER_HELM_RELEASE_PATH` is refused at once with exit 2 naming the field or variable.
//! The budgets are in `action_runner_helm::chart` and `action_runner::input_file`; bare helm's
//! behaviour on the same archives is in `docs/hostile-input.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use action_runner_tests::helm::HelmBin;
use action_runner_tests::test_env::TestEnv;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

/// The content of the file on the runner's filesystem the hostile chart links to.
const RUNNER_SECRET: &str = "tok-s3cr3t-on-the-runner-filesystem";

const CHART_YAML: &str = "apiVersion: v2\nname: mychart\nversion: 0.1.0\n";

/// The template that would put `files/tok` into the cluster.
const LEAKING_TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak-cm\n\
     data:\n  tok: {{ .Files.Get \"files/tok\" | quote }}\n";

/// An archive entry: path, kind, content (a link's target for links).
type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

/// A gzipped tar archive of `mychart/Chart.yaml`, `mychart/templates/cm.yaml` (the leaking
/// template) and `extra`, written to `path`.
fn chart_archive(path: &Path, extra: &[Entry]) -> PathBuf {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let chart: [Entry; 2] = [
        (
            "mychart/Chart.yaml",
            tar::EntryType::Regular,
            CHART_YAML.as_bytes(),
        ),
        (
            "mychart/templates/cm.yaml",
            tar::EntryType::Regular,
            LEAKING_TEMPLATE.as_bytes(),
        ),
    ];
    for (name, kind, data) in chart.iter().chain(extra) {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        if kind.is_symlink() {
            h.set_link_name(Path::new(std::str::from_utf8(data).unwrap()))
                .unwrap();
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    std::fs::write(path, b.into_inner().unwrap().finish().unwrap()).unwrap();
    path.to_path_buf()
}

/// Whether the leaking ConfigMap or any Helm release record exists in the test's namespace.
async fn assert_nothing_installed(env: &TestEnv) {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get_opt("leak-cm")
        .await
        .unwrap();
    assert!(cm.is_none(), "the chart's ConfigMap was created");
    let records = Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap();
    assert!(
        records.items.is_empty(),
        "a Helm release Secret was created"
    );
}

/// The same chart with a regular `files/tok` installs and its ConfigMap holds the file (so the
/// template would carry a linked file into the cluster); with `files/tok` a link to a file on
/// the runner's filesystem the archive is refused, exit 2 naming the chart and the entry,
/// nothing installed, the file's content shown nowhere. A chart directory with such a link too.
async fn a_linked_runner_file_never_reaches_the_cluster(h: HelmBin) {
    let env = TestEnv::bare("hostile-link").await;
    let secret = env.file("runner-secret", RUNNER_SECRET);
    let manifest = |chart: &Path, name: &str| {
        format!(
            "name: {name}\nchart: {{name: \"{}\"}}\nwait: false\n",
            chart.display()
        )
    };

    let regular = chart_archive(
        &env.path("regular.tgz"),
        &[(
            "mychart/files/tok",
            tar::EntryType::Regular,
            b"plain-content",
        )],
    );
    let out = env
        .helm_runner(h, "regular", "install", &manifest(&regular, "regular"))
        .await
        .run()
        .await
        .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get("leak-cm")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["tok"], "plain-content");
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .delete("leak-cm", &Default::default())
        .await
        .unwrap();
    Api::<Secret>::namespaced(env.client.clone(), &env.ns)
        .delete_collection(
            &Default::default(),
            &ListParams::default().labels("owner=helm"),
        )
        .await
        .unwrap();

    let hostile = chart_archive(
        &env.path("hostile.tgz"),
        &[(
            "mychart/files/tok",
            tar::EntryType::Symlink,
            secret.to_str().unwrap().as_bytes(),
        )],
    );
    let out = env
        .helm_runner(h, "leak", "install", &manifest(&hostile, "leak"))
        .await
        .run()
        .await
        .unwrap();
    env.assert_bad_input(
        "leak",
        &out,
        &format!(
            "chart.name {}: entry \"mychart/files/tok\" is a symbolic link (a chart holds \
             regular files and directories only)",
            hostile.display()
        ),
    )
    .await;
    out.assert_not_shown(RUNNER_SECRET);
    assert_nothing_installed(&env).await;

    // The same chart as a directory: the link leaves it.
    let dir = env.path("dirchart/mychart");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("Chart.yaml"), CHART_YAML).unwrap();
    std::fs::write(dir.join("templates/cm.yaml"), LEAKING_TEMPLATE).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("files/tok")).unwrap();
    let out = env
        .helm_runner(h, "leak-dir", "install", &manifest(&dir, "leak-dir"))
        .await
        .run()
        .await
        .unwrap();
    env.assert_bad_input(
        "leak-dir",
        &out,
        "entry \"files/tok\" is a symbolic link leaving the chart directory",
    )
    .await;
    out.assert_not_shown(RUNNER_SECRET);
    assert_nothing_installed(&env).await;
}

/// A gzip bomb (one entry of 1 GiB of zeros, about 1 MiB compressed) is refused at the budget of
/// one file, 5 MiB, while it is streamed: exit 2 naming the entry, nothing installed.
async fn a_gzip_bomb_is_refused(h: HelmBin) {
    const GIB: u64 = 1024 * 1024 * 1024;
    let env = TestEnv::bare("hostile-bomb").await;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, size) in [
        ("mychart/Chart.yaml", CHART_YAML.len() as u64),
        ("mychart/files/zeros", GIB),
    ] {
        let mut hd = tar::Header::new_gnu();
        hd.set_path(name).unwrap();
        hd.set_size(size);
        hd.set_mode(0o644);
        hd.set_cksum();
        let data: Box<dyn Read> = if size == GIB {
            Box::new(std::io::repeat(0).take(GIB))
        } else {
            Box::new(CHART_YAML.as_bytes())
        };
        b.append(&hd, data).unwrap();
    }
    let bomb = env.path("bomb.tgz");
    std::fs::write(&bomb, b.into_inner().unwrap().finish().unwrap()).unwrap();
    let manifest = format!(
        "name: bomb\nchart: {{name: \"{}\"}}\nwait: false\n",
        bomb.display()
    );
    let out = env
        .helm_runner(h, "bomb", "install", &manifest)
        .await
        .run()
        .await
        .unwrap();
    env.assert_bad_input(
        "bomb",
        &out,
        "entry \"mychart/files/zeros\" holds more than 5242880 bytes (5 MiB), the most one file \
         of a chart may hold",
    )
    .await;
    assert_nothing_installed(&env).await;
}

/// A FIFO, `/dev/zero`, a directory and an oversize file as `valuesFromFile` and as
/// `RUNNER_HELM_RELEASE_PATH`: each run exits 2 naming the field or the variable (a runner that
/// waited on the FIFO or read `/dev/zero` would never exit: the harness fails a run that has not
/// ended within its bound; how fast a refusal is, is not a test's business).
async fn hostile_input_files_are_refused_at_once(h: HelmBin) {
    let env = TestEnv::bare("hostile-files").await;
    let chart = env.path("chart/mychart");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), CHART_YAML).unwrap();
    let fifo = env.path("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let big_values = env.file(
        "big-values.yaml",
        &format!("k: \"{}\"\n", "v".repeat(3 << 20)),
    );
    let big_release = env.file("big-release.yaml", &"#".repeat((1 << 20) + 1));
    let zero = PathBuf::from("/dev/zero");
    let cases: [(&str, &Path, &str, &Path); 4] = [
        ("fifo", &fifo, "is a FIFO, not a regular file", &fifo),
        (
            "zero",
            &zero,
            "is a character device, not a regular file",
            &zero,
        ),
        ("dir", &dir, "is a directory, not a regular file", &dir),
        (
            "big",
            &big_values,
            "is larger than 3145728 bytes (3 MiB), the most read",
            &big_release,
        ),
    ];
    for (case, values, says, release) in cases {
        let name = format!("values-{case}");
        let manifest = format!(
            "name: v\nchart: {{name: \"{}\"}}\nvaluesFromFile: [\"{}\"]\nwait: false\n",
            chart.display(),
            values.display()
        );
        let out = env
            .helm_runner(h, &name, "install", &manifest)
            .await
            .run()
            .await
            .unwrap();
        let needle = format!(
            "input manifest: valuesFromFile {}: {says}",
            values.display()
        );
        env.assert_bad_input(&name, &out, &needle).await;

        let name = format!("release-{case}");
        let says = match case {
            "big" => "is larger than 1048576 bytes (1 MiB), the most read",
            _ => says,
        };
        let out = env
            .helm_runner(h, &name, "upgrade", "wait: false\n")
            .await
            .var("RUNNER_HELM_RELEASE_PATH", Some(release.to_str().unwrap()))
            .run()
            .await
            .unwrap();
        let needle = format!(
            "release file {} (RUNNER_HELM_RELEASE_PATH): {says}",
            release.display()
        );
        env.assert_bad_input(&name, &out, &needle).await;
    }
    assert_nothing_installed(&env).await;
}

action_runner_tests::both_helms!(
    a_linked_runner_file_never_reaches_the_cluster,
    a_gzip_bomb_is_refused,
    hostile_input_files_are_refused_at_once,
);
