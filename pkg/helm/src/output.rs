//! The two output files, in the shapes Capact's Helm runner writes (`OutputFile`:
//! `{value, backend}`, both keys always present, `null` when unused), as typed documents written
//! with serde-saphyr. Capact's Go runner lays its YAML out with `sigs.k8s.io/yaml`; the layout
//! (key order, quoting, folding) may differ, the documents do not, and Capact's consumers read
//! them as YAML, so they read both the same (the tests compare parsed documents).
//!
//! Release file (`RUNNER_OUTPUT_HELM_RELEASE_FILE_PATH`):
//! ```yaml
//! value:
//!   name: <release>
//!   namespace: <namespace>
//!   chart: {name: <Chart.yaml name>, version: <Chart.yaml version>, repo: <chart.repo>}
//! backend: null
//! ```
//! or, with `output.helmRelease.useHelmReleaseStorage`,
//! `{value: null, backend: {context: {name, namespace, driver, chartLocation: <chart.repo>}}}`.
//!
//! Additional file (`RUNNER_OUTPUT_ADDITIONAL_FILE_PATH`, written only when a goTemplate is
//! given): `{value: <rendered template, parsed as YAML>, backend: null}`, or, with
//! `output.additional.useHelmTemplateStorage`,
//! `{value: null, backend: {context: {goTemplate, release: {name, namespace, driver}}}}`.

use action_runner::RunnerError;
use serde::Serialize;
use serde_json::Value;

/// The release's values as the release file shows them (install and upgrade): see
/// [`crate::values`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValuesView {
    /// `valuesDigest`: `sha256:<hex>` of the release's user-supplied values.
    pub digest: String,
    /// `valuesPreview`, with `output.helmRelease.valuesPreview: true`: the values, masked.
    pub preview: Option<Value>,
}

/// The release as the output files describe it.
#[derive(Debug, Clone, PartialEq)]
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
    /// Its values' digest and preview (install and upgrade; `None` for the other commands).
    pub values: Option<ValuesView>,
}

/// Capact's `OutputFile`: a value, or a reference to the storage backend that holds it; both
/// keys are always written (`null` when unused).
#[derive(Debug, Serialize)]
struct OutputFile<V: Serialize, B: Serialize> {
    value: Option<V>,
    backend: Option<B>,
}

/// The release, as Capact's `helm.ChartRelease`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseValue<'a> {
    name: &'a str,
    namespace: &'a str,
    chart: ChartValue<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values_digest: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values_preview: Option<&'a Value>,
}

#[derive(Debug, Serialize)]
struct ChartValue<'a> {
    name: &'a str,
    version: &'a str,
    repo: &'a str,
}

/// `{context: ...}` of a storage backend.
#[derive(Debug, Serialize)]
struct Backend<C: Serialize> {
    context: C,
}

/// Helm release storage: where the release is.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseStorage<'a> {
    name: &'a str,
    namespace: &'a str,
    driver: &'a str,
    chart_location: &'a str,
}

/// Helm template storage: the template and the release to render it against.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateStorage<'a> {
    go_template: &'a str,
    release: ReleaseAt<'a>,
}

#[derive(Debug, Serialize)]
struct ReleaseAt<'a> {
    name: &'a str,
    namespace: &'a str,
    driver: &'a str,
}

/// The YAML text of `doc`. Serializing these plain structs of strings and JSON values cannot
/// fail.
fn to_yaml(doc: &impl Serialize) -> String {
    serde_saphyr::to_string(doc).expect("output documents serialize")
}

/// The release file's content.
pub fn release_file(r: &ReleaseRef, use_helm_release_storage: bool) -> String {
    if use_helm_release_storage {
        to_yaml(&OutputFile::<(), _> {
            value: None,
            backend: Some(Backend {
                context: ReleaseStorage {
                    name: &r.name,
                    namespace: &r.namespace,
                    driver: &r.driver,
                    chart_location: &r.chart_repo,
                },
            }),
        })
    } else {
        to_yaml(&OutputFile::<_, ()> {
            value: Some(ReleaseValue {
                name: &r.name,
                namespace: &r.namespace,
                chart: ChartValue {
                    name: &r.chart_name,
                    version: &r.chart_version,
                    repo: &r.chart_repo,
                },
                values_digest: r.values.as_ref().map(|v| v.digest.as_str()),
                values_preview: r.values.as_ref().and_then(|v| v.preview.as_ref()),
            }),
            backend: None,
        })
    }
}

/// The additional file's content for the Helm template storage backend.
pub fn additional_storage_file(r: &ReleaseRef, go_template: &str) -> String {
    to_yaml(&OutputFile::<(), _> {
        value: None,
        backend: Some(Backend {
            context: TemplateStorage {
                go_template,
                release: ReleaseAt {
                    name: &r.name,
                    namespace: &r.namespace,
                    driver: &r.driver,
                },
            },
        }),
    })
}

/// The additional file's content from the rendered template: its text is read as YAML (an
/// empty text is `null`) and written back under `value`.
///
/// # Errors
/// [`ErrorKind::Failed`](action_runner::error::ErrorKind) with the parser's position when the
/// rendered text is not YAML (the text itself is not quoted: it may hold values).
pub fn additional_value_file(rendered: &str) -> Result<String, RunnerError> {
    let blank = rendered
        .lines()
        .map(str::trim)
        .all(|l| l.is_empty() || l.starts_with('#') || l == "---");
    let value: Value = if blank {
        Value::Null
    } else {
        serde_saphyr::from_str(rendered).map_err(|e| {
            let position = e
                .location()
                .map(|l| format!("line {}, column {}", l.line(), l.column()))
                .unwrap_or_else(|| "position unknown".into());
            RunnerError::failed(format!(
                "the rendered output.additional.goTemplate is not YAML ({position})"
            ))
        })?
    };
    Ok(to_yaml(&OutputFile::<_, ()> {
        value: (!value.is_null()).then_some(value),
        backend: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rel() -> ReleaseRef {
        ReleaseRef {
            name: "rel".into(),
            namespace: "ns".into(),
            driver: "secrets".into(),
            chart_name: "mychart".into(),
            chart_version: "0.1.0".into(),
            chart_repo: "http://127.0.0.1:8080".into(),
            values: None,
        }
    }

    /// The document `text` holds.
    fn doc(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn release_shapes() {
        assert_eq!(
            doc(&release_file(&rel(), false)),
            json!({"backend": null, "value": {"name": "rel", "namespace": "ns",
                "chart": {"name": "mychart", "version": "0.1.0", "repo": "http://127.0.0.1:8080"}}})
        );
        assert_eq!(
            doc(&release_file(&rel(), true)),
            json!({"value": null, "backend": {"context": {"name": "rel", "namespace": "ns",
                "driver": "secrets", "chartLocation": "http://127.0.0.1:8080"}}})
        );
    }

    #[test]
    fn additional_shapes() {
        assert_eq!(
            doc(&additional_storage_file(&rel(), "host: {{ .Values.host }}")),
            json!({"value": null, "backend": {"context": {"goTemplate": "host: {{ .Values.host }}",
                "release": {"name": "rel", "namespace": "ns", "driver": "secrets"}}}})
        );
        assert_eq!(
            doc(&additional_value_file("host: rel-mychart\nport: 80\n").unwrap()),
            json!({"backend": null, "value": {"host": "rel-mychart", "port": 80}})
        );
        assert_eq!(
            doc(&additional_value_file("\n").unwrap()),
            json!({"backend": null, "value": null})
        );
        let e = additional_value_file("a: [b\n").unwrap_err().to_string();
        assert!(e.contains("line"), "{e}");
    }

    /// Strings that would read back as another type stay strings.
    #[test]
    fn strings_stay_strings() {
        for tricky in [
            "true",
            "null",
            "1.5",
            "0x1f",
            "2001-12-14",
            "",
            " lead",
            "a: b",
            "#x",
            "multi\nline\n",
        ] {
            let r = ReleaseRef {
                name: tricky.into(),
                ..rel()
            };
            assert_eq!(
                doc(&release_file(&r, false))["value"]["name"],
                json!(tricky),
                "{tricky:?}"
            );
        }
    }
}
