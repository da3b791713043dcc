//! The two output files, in the shapes Capact's Helm runner writes (`OutputFile`:
//! `{value, backend}`, both keys always present, `null` when unused; YAML laid out like
//! `sigs.k8s.io/yaml`, see [`crate::goyaml`]).
//!
//! Release file (`RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`):
//! ```yaml
//! backend: null
//! value:
//!   chart: {name: <Chart.yaml name>, repo: <chart.repo>, version: <Chart.yaml version>}
//!   name: <release>
//!   namespace: <namespace>
//! ```
//! or, with `output.helmRelease.useHelmReleaseStorage`,
//! `{backend: {context: {chartLocation: <chart.repo>, driver, name, namespace}}, value: null}`.
//!
//! Additional file (`RUNNER_OUTPUT_ADDITIONAL_FILE_PATH`, written only when a goTemplate is
//! given): `{backend: null, value: <rendered template, parsed as YAML>}`, or, with
//! `output.additional.useHelmTemplateStorage`,
//! `{backend: {context: {goTemplate, release: {driver, name, namespace}}}, value: null}`.

use serde_json::{Value, json};

use crate::goyaml;

/// The release as the output files describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRef {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// `RUNNER_HELM_DRIVER`, as configured.
    pub driver: String,
    /// Chart name from the chart's `Chart.yaml`.
    pub chart_name: String,
    /// Chart version from the chart's `Chart.yaml`.
    pub chart_version: String,
    /// `chart.repo` of the input (for an upgrade, merged with the release file's).
    pub chart_repo: String,
}

/// The release file's content.
pub fn release_file(r: &ReleaseRef, use_helm_release_storage: bool) -> String {
    let doc = if use_helm_release_storage {
        json!({
            "value": null,
            "backend": {"context": {
                "name": r.name, "namespace": r.namespace, "driver": r.driver,
                "chartLocation": r.chart_repo,
            }},
        })
    } else {
        json!({
            "value": {
                "name": r.name, "namespace": r.namespace,
                "chart": {"name": r.chart_name, "version": r.chart_version, "repo": r.chart_repo},
            },
            "backend": null,
        })
    };
    goyaml::to_string(&doc)
}

/// The additional file's content for the Helm template storage backend.
pub fn additional_storage_file(r: &ReleaseRef, go_template: &str) -> String {
    goyaml::to_string(&json!({
        "value": null,
        "backend": {"context": {
            "goTemplate": go_template,
            "release": {"name": r.name, "namespace": r.namespace, "driver": r.driver},
        }},
    }))
}

/// The additional file's content from the rendered template: its text is read as YAML (an
/// empty text is `null`) and written back under `value`.
///
/// # Errors
/// A sentence with the parser's position when the rendered text is not YAML (the text itself
/// is not quoted: it may hold values).
pub fn additional_value_file(rendered: &str) -> Result<String, String> {
    let blank = rendered
        .lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---");
    let value: Value = if blank {
        Value::Null
    } else {
        serde_saphyr::from_str(rendered).map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or_default().to_string();
            let position = first.split(':').next().unwrap_or_default().to_string();
            format!("the rendered output.additional.goTemplate is not YAML ({position})")
        })?
    };
    Ok(goyaml::to_string(&json!({"value": value, "backend": null})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel() -> ReleaseRef {
        ReleaseRef {
            name: "rel".into(),
            namespace: "ns".into(),
            driver: "secrets".into(),
            chart_name: "mychart".into(),
            chart_version: "0.1.0".into(),
            chart_repo: "http://127.0.0.1:8080".into(),
        }
    }

    #[test]
    fn release_shapes() {
        assert_eq!(
            release_file(&rel(), false),
            "backend: null\nvalue:\n  chart:\n    name: mychart\n    repo: http://127.0.0.1:8080\n    version: 0.1.0\n  name: rel\n  namespace: ns\n"
        );
        assert_eq!(
            release_file(&rel(), true),
            "backend:\n  context:\n    chartLocation: http://127.0.0.1:8080\n    driver: secrets\n    name: rel\n    namespace: ns\nvalue: null\n"
        );
    }

    #[test]
    fn additional_shapes() {
        assert_eq!(
            additional_storage_file(&rel(), "host: {{ .Values.host }}"),
            "backend:\n  context:\n    goTemplate: 'host: {{ .Values.host }}'\n    release:\n      driver: secrets\n      name: rel\n      namespace: ns\nvalue: null\n"
        );
        assert_eq!(
            additional_value_file("host: rel-mychart\nport: 80\n").unwrap(),
            "backend: null\nvalue:\n  host: rel-mychart\n  port: 80\n"
        );
        assert_eq!(
            additional_value_file("\n").unwrap(),
            "backend: null\nvalue: null\n"
        );
        assert!(additional_value_file("a: [b\n").is_err());
    }
}
