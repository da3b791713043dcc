//! The Argo runner's input manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// `apiVersion` of Argo's `Workflow` (Argo Workflows v3, `argoproj.io/v1alpha1`).
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
/// `kind` of Argo's `Workflow`.
pub const KIND: &str = "Workflow";

/// The input manifest, in any of three shapes:
///
/// 1. a bare Argo `WorkflowSpec` (`{entrypoint: ..., templates: [...]}`);
/// 2. `{workflow: <WorkflowSpec>}` (Capact's shape);
/// 3. a whole `Workflow` object as `argo submit` takes it (`apiVersion: argoproj.io/v1alpha1`,
///    `kind: Workflow`, `metadata`, `spec`). Its `metadata.labels` and `metadata.annotations`
///    are kept; `metadata.name` and `metadata.generateName` are replaced by
///    `RUNNER_CONTEXT_NAME`.
///
/// The spec is kept as opaque JSON, so no field of any Argo version is lost. A spec must hold
/// `templates` or `workflowTemplateRef` (Argo rejects a Workflow with neither).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkflowManifest {
    /// `metadata.labels` of a whole Workflow (empty otherwise).
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations` of a whole Workflow (empty otherwise).
    pub annotations: BTreeMap<String, String>,
    /// `metadata.namespace` of a whole Workflow, if given; it must equal the platform namespace.
    pub namespace: Option<String>,
    /// The `WorkflowSpec`, untouched.
    pub spec: Map<String, Value>,
}

impl<'de> Deserialize<'de> for WorkflowManifest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        WorkflowManifest::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Why a manifest is not one of the three shapes; the text names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShapeError(pub String);

impl WorkflowManifest {
    /// Classifies `value` into one of the three shapes.
    ///
    /// # Errors
    /// A one-line message naming the field whose shape is wrong.
    pub fn from_value(value: Value) -> Result<Self, ShapeError> {
        let Value::Object(mut top) = value else {
            return Err(ShapeError(format!(
                "wrong shape: expected a mapping (a WorkflowSpec, {{workflow: <WorkflowSpec>}}, \
                 or a {KIND} object), found {}",
                kind_of(&value)
            )));
        };
        if top.contains_key("apiVersion") || top.contains_key("kind") {
            return Self::from_workflow(top);
        }
        if top.len() == 1 && top.contains_key("workflow") {
            let spec = spec_of(top.remove("workflow").unwrap_or_default(), "workflow")?;
            return Ok(Self::bare(spec));
        }
        Ok(Self::bare(spec_of(Value::Object(top), "the manifest")?))
    }

    fn bare(spec: Map<String, Value>) -> Self {
        WorkflowManifest {
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            namespace: None,
            spec,
        }
    }

    fn from_workflow(mut top: Map<String, Value>) -> Result<Self, ShapeError> {
        let api_version = top
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version != API_VERSION {
            return Err(ShapeError(format!(
                "apiVersion: must be {API_VERSION:?}, found {api_version:?}"
            )));
        }
        let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != KIND {
            return Err(ShapeError(format!(
                "kind: must be {KIND:?}, found {kind:?}"
            )));
        }
        if let Some(field) = top.keys().find(|k| {
            !matches!(
                k.as_str(),
                "apiVersion" | "kind" | "metadata" | "spec" | "status"
            )
        }) {
            return Err(ShapeError(format!(
                "unknown field {field:?} in a {KIND} object"
            )));
        }
        let spec = spec_of(top.remove("spec").unwrap_or(Value::Null), "spec")?;
        let mut manifest = Self::bare(spec);
        match top.remove("metadata") {
            None | Some(Value::Null) => {}
            Some(Value::Object(meta)) => {
                manifest.labels = string_map(meta.get("labels"), "metadata.labels")?;
                manifest.annotations = string_map(meta.get("annotations"), "metadata.annotations")?;
                manifest.namespace = match meta.get("namespace") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(ns)) => Some(ns.clone()),
                    Some(other) => {
                        return Err(ShapeError(format!(
                            "metadata.namespace: expected a string, found {}",
                            kind_of(other)
                        )));
                    }
                };
            }
            Some(other) => {
                return Err(ShapeError(format!(
                    "metadata: expected a mapping, found {}",
                    kind_of(&other)
                )));
            }
        }
        Ok(manifest)
    }
}

fn spec_of(value: Value, field: &str) -> Result<Map<String, Value>, ShapeError> {
    match value {
        Value::Object(spec)
            if spec.contains_key("templates") || spec.contains_key("workflowTemplateRef") =>
        {
            Ok(spec)
        }
        Value::Object(_) => Err(ShapeError(format!(
            "wrong shape: {field} is not a WorkflowSpec: it needs `templates` or `workflowTemplateRef`"
        ))),
        other => Err(ShapeError(format!(
            "wrong shape: {field} must be a WorkflowSpec mapping, found {}",
            kind_of(&other)
        ))),
    }
}

fn string_map(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>, ShapeError> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ShapeError(format!(
                    "{field}.{k}: expected a string, found {}",
                    kind_of(other)
                ))),
            })
            .collect(),
        Some(other) => Err(ShapeError(format!(
            "{field}: expected a mapping, found {}",
            kind_of(other)
        ))),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<WorkflowManifest, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn three_shapes() {
        let bare = parse("entrypoint: main\ntemplates: [{name: main}]\n").unwrap();
        assert_eq!(bare.spec["entrypoint"], "main");
        let wrapped = parse("workflow:\n  entrypoint: main\n  templates: []\n").unwrap();
        assert_eq!(
            wrapped.spec,
            bare.spec
                .clone()
                .into_iter()
                .map(|(k, v)| {
                    if k == "templates" {
                        (k, Value::Array(vec![]))
                    } else {
                        (k, v)
                    }
                })
                .collect()
        );
        let whole = parse(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: x-\n  \
             labels: {a: b}\n  annotations: {c: d}\nspec:\n  entrypoint: main\n  templates: []\n",
        )
        .unwrap();
        assert_eq!(whole.labels["a"], "b");
        assert_eq!(whole.annotations["c"], "d");
    }

    #[test]
    fn wrong_shapes() {
        for (yaml, needle) in [
            ("- a\n- b\n", "found a list"),
            ("just text\n", "found a string"),
            ("foo: bar\n", "templates"),
            ("workflow: 3\n", "workflow must be a WorkflowSpec"),
            (
                "apiVersion: v1\nkind: Workflow\nspec: {templates: []}\n",
                "apiVersion",
            ),
            (
                "apiVersion: argoproj.io/v1alpha1\nkind: Pod\nspec: {templates: []}\n",
                "kind",
            ),
            (
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n",
                "spec must be",
            ),
            (
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec: {templates: []}\nextra: 1\n",
                "extra",
            ),
            (
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {labels: {a: 1}}\nspec: {templates: []}\n",
                "metadata.labels.a",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
    }
}
