//! WorkflowTemplates a Workflow refers to, checked before anything is written (in a dry run
//! too): `spec.workflowTemplateRef` (the whole Workflow from a `WorkflowTemplate` or, with
//! `clusterScope: true`, a `ClusterWorkflowTemplate`) and each step's and DAG task's
//! `templateRef` (one template of one). Argo's controller would otherwise fail the Workflow
//! at once with `Error`; here the run ends with exit 2 and a one-line reason naming the field.
//!
//! Checked, as Argo's validator does (`workflow/validate/validate.go`, template resolution):
//! the (Cluster)WorkflowTemplate exists; a `templateRef.template` is one of its templates; with
//! `workflowTemplateRef`, the entrypoint (the Workflow's `spec.entrypoint` override, else the
//! WorkflowTemplate's) is one of its templates or the Workflow's own.
//!
//! Needs `get` on `workflowtemplates` in the namespace (and on `clusterworkflowtemplates`, a
//! ClusterRole, for `clusterScope` references): see `deploy/argo-runner/components/templates`.
//! Without it the check is skipped with a warning and Argo's own message tells the story.

use std::collections::BTreeMap;

use action_runner::RunnerError;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Map, Value};

/// The `WorkflowTemplate` resource, `workflowtemplates.argoproj.io/v1alpha1` (namespaced).
pub fn workflow_template_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "WorkflowTemplate"),
        "workflowtemplates",
    )
}

/// The `ClusterWorkflowTemplate` resource, `clusterworkflowtemplates.argoproj.io/v1alpha1`.
pub fn cluster_workflow_template_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "ClusterWorkflowTemplate"),
        "clusterworkflowtemplates",
    )
}

/// One reference to a (Cluster)WorkflowTemplate in a Workflow's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The field it is in, e.g. `spec.workflowTemplateRef` or
    /// `spec.templates[0].steps[1][0].templateRef`.
    pub field: String,
    /// The (Cluster)WorkflowTemplate's name.
    pub name: String,
    /// `templateRef.template` (none for `workflowTemplateRef`).
    pub template: Option<String>,
    /// `clusterScope: true`: a ClusterWorkflowTemplate.
    pub cluster_scope: bool,
}

impl Reference {
    fn kind(&self) -> &'static str {
        if self.cluster_scope {
            "ClusterWorkflowTemplate"
        } else {
            "WorkflowTemplate"
        }
    }
}

fn reference(field: String, v: &Value, with_template: bool) -> Option<Reference> {
    let o = v.as_object()?;
    Some(Reference {
        field,
        name: o.get("name")?.as_str()?.to_string(),
        template: with_template
            .then(|| {
                o.get("template")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .flatten(),
        cluster_scope: o.get("clusterScope").and_then(Value::as_bool) == Some(true),
    })
}

/// Every WorkflowTemplate reference in `spec` (a `WorkflowSpec`), in document order:
/// `workflowTemplateRef`, then each step's and DAG task's `templateRef`.
pub fn references(spec: &Map<String, Value>) -> Vec<Reference> {
    let mut out = Vec::new();
    if let Some(r) = spec
        .get("workflowTemplateRef")
        .and_then(|v| reference("spec.workflowTemplateRef".into(), v, false))
    {
        out.push(r);
    }
    let templates = spec.get("templates").and_then(Value::as_array);
    for (i, t) in templates.into_iter().flatten().enumerate() {
        let steps = t.get("steps").and_then(Value::as_array);
        for (j, group) in steps.into_iter().flatten().enumerate() {
            for (k, step) in group.as_array().into_iter().flatten().enumerate() {
                let field = format!("spec.templates[{i}].steps[{j}][{k}].templateRef");
                if let Some(r) = step
                    .get("templateRef")
                    .and_then(|v| reference(field, v, true))
                {
                    out.push(r);
                }
            }
        }
        let tasks = t
            .get("dag")
            .and_then(|d| d.get("tasks"))
            .and_then(Value::as_array);
        for (j, task) in tasks.into_iter().flatten().enumerate() {
            let field = format!("spec.templates[{i}].dag.tasks[{j}].templateRef");
            if let Some(r) = task
                .get("templateRef")
                .and_then(|v| reference(field, v, true))
            {
                out.push(r);
            }
        }
    }
    out
}

/// The names of `spec.templates` of a (Cluster)WorkflowTemplate or Workflow spec.
fn template_names(spec: Option<&Value>) -> Vec<String> {
    spec.and_then(|s| s.get("templates"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// What is wrong with `reference`, given the template it names (`None`: it does not exist), in
/// one line, or `None` when it resolves. `workflow_spec` is the referring Workflow's spec.
pub fn problem(
    reference: &Reference,
    namespace: &str,
    found: Option<&Value>,
    workflow_spec: &Map<String, Value>,
) -> Option<String> {
    let what = if reference.cluster_scope {
        format!("{} {}", reference.kind(), reference.name)
    } else {
        format!("{} {namespace}/{}", reference.kind(), reference.name)
    };
    let Some(found) = found else {
        return Some(format!(
            "{}.name {:?}: {what} not found",
            reference.field, reference.name
        ));
    };
    let spec = found.get("spec");
    let names = template_names(spec);
    if let Some(t) = &reference.template {
        if !names.contains(t) {
            return Some(format!(
                "{}.template {t:?}: no such template in {what}",
                reference.field
            ));
        }
        return None;
    }
    // workflowTemplateRef: the entrypoint comes from the Workflow or from the template.
    let own = workflow_spec
        .get("entrypoint")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty());
    let theirs = spec
        .and_then(|s| s.get("entrypoint"))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty());
    let mine = template_names(Some(&Value::Object(workflow_spec.clone())));
    match (own, theirs) {
        (Some(e), _) if !names.iter().chain(&mine).any(|n| n == e) => {
            Some(format!("spec.entrypoint {e:?}: no such template in {what}"))
        }
        (None, Some(e)) if !names.iter().chain(&mine).any(|n| n == e) => Some(format!(
            "{}: {what}'s entrypoint {e:?} names no template",
            reference.field
        )),
        (None, None) => Some(format!(
            "spec.entrypoint is required: neither the Workflow nor {what} names one"
        )),
        _ => None,
    }
}

/// Fetches every (Cluster)WorkflowTemplate `spec` refers to and checks each reference
/// ([`problem`]). No request is made when there is none.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](action_runner::error::ErrorKind) with the first problem;
/// [`ErrorKind::Cluster`](action_runner::error::ErrorKind) (or `Unavailable`) when a template
/// cannot be read for another reason than `403` (skipped, with a warning).
pub async fn check(
    client: &kube::Client,
    namespace: &str,
    spec: &Map<String, Value>,
) -> Result<(), RunnerError> {
    let refs = references(spec);
    // (cluster scope, name) -> the object, or None when it does not exist.
    let mut fetched: BTreeMap<(bool, String), Option<Value>> = BTreeMap::new();
    for r in &refs {
        let key = (r.cluster_scope, r.name.clone());
        if !fetched.contains_key(&key) {
            let api: Api<DynamicObject> = if r.cluster_scope {
                Api::all_with(client.clone(), &cluster_workflow_template_resource())
            } else {
                Api::namespaced_with(client.clone(), namespace, &workflow_template_resource())
            };
            let obj = match api.get_opt(&r.name).await {
                Ok(obj) => obj.map(|o| o.data),
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    tracing::warn!(reference = %r.field, kind = r.kind(), name = %r.name,
                        "cannot read the referenced template (forbidden); leaving the check to Argo");
                    continue;
                }
                Err(e) => {
                    return Err(RunnerError::from_kube(
                        format!("get {} {} ({})", r.kind(), r.name, r.field),
                        e,
                    ));
                }
            };
            fetched.insert(key.clone(), obj);
        }
        if let Some(found) = fetched.get(&key)
            && let Some(p) = problem(r, namespace, found.as_ref(), spec)
        {
            return Err(RunnerError::invalid_input(format!("input manifest: {p}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references_are_found_in_document_order() {
        let s = spec(json!({
            "workflowTemplateRef": {"name": "base"},
            "templates": [
                {"name": "main", "steps": [[{"name": "a", "templateRef": {"name": "lib", "template": "say"}}]]},
                {"name": "d", "dag": {"tasks": [{"name": "t", "templateRef": {"name": "c", "template": "x", "clusterScope": true}}]}},
            ],
        }));
        let refs = references(&s);
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].field, "spec.workflowTemplateRef");
        assert_eq!(refs[1].field, "spec.templates[0].steps[0][0].templateRef");
        assert_eq!(refs[1].template.as_deref(), Some("say"));
        assert_eq!(refs[2].field, "spec.templates[1].dag.tasks[0].templateRef");
        assert!(refs[2].cluster_scope);
        assert!(references(&spec(json!({"entrypoint": "a"}))).is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        let wt = json!({"spec": {"entrypoint": "main", "templates": [{"name": "main"}, {"name": "say"}]}});
        let r = |template: Option<&str>| Reference {
            field: "spec.workflowTemplateRef".into(),
            name: "base".into(),
            template: template.map(Into::into),
            cluster_scope: false,
        };
        let empty = spec(json!({}));
        assert_eq!(
            problem(&r(None), "ns", None, &empty).unwrap(),
            "spec.workflowTemplateRef.name \"base\": WorkflowTemplate ns/base not found"
        );
        assert_eq!(problem(&r(None), "ns", Some(&wt), &empty), None);
        assert_eq!(
            problem(
                &r(None),
                "ns",
                Some(&wt),
                &spec(json!({"entrypoint": "say"}))
            ),
            None
        );
        assert_eq!(
            problem(
                &r(None),
                "ns",
                Some(&wt),
                &spec(json!({"entrypoint": "nope"}))
            )
            .unwrap(),
            "spec.entrypoint \"nope\": no such template in WorkflowTemplate ns/base"
        );
        assert_eq!(problem(&r(Some("say")), "ns", Some(&wt), &empty), None);
        assert!(
            problem(&r(Some("gone")), "ns", Some(&wt), &empty)
                .unwrap()
                .ends_with(".template \"gone\": no such template in WorkflowTemplate ns/base")
        );
        let no_entry = json!({"spec": {"templates": [{"name": "main"}]}});
        assert!(
            problem(&r(None), "ns", Some(&no_entry), &empty)
                .unwrap()
                .starts_with("spec.entrypoint is required")
        );
        let mut c = r(None);
        c.cluster_scope = true;
        assert!(
            problem(&c, "ns", None, &empty)
                .unwrap()
                .ends_with("ClusterWorkflowTemplate base not found")
        );
    }
}
