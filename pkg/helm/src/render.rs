//! Rendering the additional output's Go template with Helm itself.
//!
//! Capact renders `output.additional.goTemplate` as one more template file of the chart, with
//! the release's name, namespace and revision and the release's values merged over the
//! chart's (so `{{ template "mychart.fullname" . }}` and `.Values` work as in the chart).
//!
//! We keep Helm's exact template semantics (Sprig and Helm functions, named templates of the
//! chart and its subcharts, values coalescing, `values.schema.json`) by letting the helm CLI do
//! the rendering instead of reimplementing Go templates: in the runner's unpacked copy of the
//! chart we add
//! - `templates/_action-runner-additional-output.tpl`: the goTemplate, verbatim (a partial, so
//!   Helm renders it but never emits it; `define`s inside it work), and
//! - `templates/action-runner-additional-output.yaml`: a wrapper that sets `.Release.Revision`
//!   to the release's revision, `include`s the partial by its template name
//!   (`<chart>/templates/<file>`) and emits it base64-encoded in a one-key YAML document,
//!
//! then run `helm template <release> <chart> --namespace <ns> --values <release values>
//! --show-only templates/action-runner-additional-output.yaml`. The base64 wrapper makes the
//! rendered text reach us byte for byte, whatever it holds (Helm would otherwise parse and
//! split it as Kubernetes manifests). `helm template` is client-only: it renders with the
//! release values read from Helm's own output (`config` of `helm install -o json`), never
//! touches the cluster, and `.Release.IsInstall` is `true` as in Capact. `--kube-version` is the
//! API server's version, so `.Capabilities.KubeVersion` matches what the release was rendered
//! with.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use action_runner::RunnerError;
use base64::Engine;

use crate::cli::Helm;

/// File name of the partial holding the goTemplate.
pub const PARTIAL: &str = "_action-runner-additional-output.tpl";
/// File name of the wrapper template.
pub const WRAPPER: &str = "action-runner-additional-output.yaml";

/// What the template needs to know about the release.
#[derive(Debug, Clone)]
pub struct RenderRelease<'a> {
    /// Release name.
    pub name: &'a str,
    /// Release namespace.
    pub namespace: &'a str,
    /// Release revision (`.Release.Revision`).
    pub revision: u64,
    /// Chart name from `Chart.yaml` (the prefix of the chart's template names).
    pub chart_name: &'a str,
    /// Kubernetes version for `--kube-version`, if known.
    pub kube_version: Option<&'a str>,
}

/// The wrapper template's text.
pub fn wrapper(chart_name: &str, revision: u64) -> String {
    let include = format!("{chart_name}/templates/{PARTIAL}");
    let quoted = format!("\"{}\"", include.replace('\\', "\\\\").replace('"', "\\\""));
    format!(
        "{{{{- $_ := set .Release \"Revision\" {revision} }}}}\n\
         kind: ActionRunnerAdditionalOutput\n\
         data: {{{{ include {quoted} . | b64enc | quote }}}}\n"
    )
}

/// Renders `template` against the release, in the unpacked chart `chart_dir`, with the
/// release's user-supplied values in the file `values_file`.
///
/// The two template files are created new in `templates/` (`create_new`, `O_NOFOLLOW`, mode
/// 0644): a path the chart planted cannot redirect the write.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) with Helm's (redacted) message when the
/// template does not render, or naming the file when it cannot be written (the chart holds a
/// file of a name the runner reserves, [`PARTIAL`] or [`WRAPPER`]).
pub async fn render(
    helm: &Helm,
    chart_dir: &Path,
    release: &RenderRelease<'_>,
    template: &str,
    values_file: &Path,
) -> Result<String, RunnerError> {
    let templates = chart_dir.join("templates");
    // The runner's copy of the chart holds regular files and directories only
    // (`crate::chart::unpack`, `copy_chart_dir`); the files are created new all the same, never
    // through a link nor over a file of the chart.
    let write = |name: &str, text: &str| {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&templates)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(templates.join(name))
            })
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        "the chart holds a file of that name, which the runner reserves".into()
                    }
                    _ => e.to_string(),
                };
                RunnerError::failed(format!(
                    "cannot write {} for rendering the additional output: {why}",
                    templates.join(name).display()
                ))
            })
    };
    write(PARTIAL, template)?;
    write(WRAPPER, &wrapper(release.chart_name, release.revision))?;

    let mut args: Vec<OsString> = vec![
        "template".into(),
        release.name.into(),
        chart_dir.into(),
        "--namespace".into(),
        release.namespace.into(),
        "--values".into(),
        values_file.into(),
        "--show-only".into(),
        format!("templates/{WRAPPER}").into(),
    ];
    if let Some(v) = release.kube_version {
        args.extend(["--kube-version".into(), v.into()]);
    }
    let out = helm
        .run("rendering output.additional.goTemplate", &args)
        .await
        .map_err(|e| RunnerError::failed(e.to_string()))?;
    decode(&String::from_utf8_lossy(&out)).ok_or_else(|| {
        RunnerError::failed(
            "rendering output.additional.goTemplate: helm template printed no output document",
        )
    })
}

/// Extracts and decodes the wrapper's `data: "<base64>"` line from `helm template`'s output.
pub fn decode(stdout: &str) -> Option<String> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("data: "))?;
    let b64 = line.trim().trim_matches('"');
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_text() {
        assert_eq!(
            wrapper("mychart", 3),
            "{{- $_ := set .Release \"Revision\" 3 }}\nkind: ActionRunnerAdditionalOutput\n\
             data: {{ include \"mychart/templates/_action-runner-additional-output.tpl\" . | b64enc | quote }}\n"
        );
    }

    #[test]
    fn decodes() {
        let out = "---\n# Source: c/templates/x.yaml\nkind: ActionRunnerAdditionalOutput\ndata: \"aG9zdDogYQo=\"\n";
        assert_eq!(decode(out).as_deref(), Some("host: a\n"));
        assert_eq!(decode("data: \"\"\n").as_deref(), Some(""));
    }
}
