//! Reads the versions of Kubernetes, Helm and Argo the runners are tested with from the one place
//! they are pinned, `hack/install-tools.sh` (its `NAME=vX.Y.Z` lines), and hands them to the
//! crate as `KAR_PINNED_<NAME>` (read by `action_runner::cli::tested`), so that `--version`
//! cannot drift from what the tests run.

use std::path::Path;

/// The pins `--version` reports.
const PINS: [&str; 6] = [
    "KUBERNETES_VERSION",
    "KUBERNETES_OLDEST_VERSION",
    "HELM4_VERSION",
    "HELM3_VERSION",
    "ARGO4_VERSION",
    "ARGO3_VERSION",
];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = Path::new(&dir).join("../../hack/install-tools.sh");
    println!("cargo::rerun-if-changed={}", script.display());
    let text = std::fs::read_to_string(&script).unwrap_or_else(|e| {
        panic!(
            "cannot read {} (it pins the tool versions --version reports): {e}",
            script.display()
        )
    });
    for name in PINS {
        let version = pinned(&text, name).unwrap_or_else(|| {
            panic!(
                "{} has no line `{name}=vX.Y.Z` (the version --version reports)",
                script.display()
            )
        });
        println!("cargo::rustc-env=KAR_PINNED_{name}={version}");
    }
}

/// The value of the line `NAME=vX.Y.Z`, followed by nothing or by blanks and a comment.
fn pinned(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('=')?;
        let value = rest.split_whitespace().next()?;
        let after = rest.trim_start().strip_prefix(value)?.trim_start();
        let numbers = value.strip_prefix('v')?;
        let is_version = numbers.split('.').count() == 3
            && numbers
                .split('.')
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        (is_version && (after.is_empty() || after.starts_with('#'))).then(|| value.to_string())
    })
}
