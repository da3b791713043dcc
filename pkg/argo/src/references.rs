//! What Argo itself rejects in a Workflow's template references, checked before anything is
//! written: Argo's minimal CRDs (which Argo still ships) let the API server accept almost any
//! spec, and Argo's controller would then fail the Workflow at once (`Error`) with its own
//! message. Checked here, without the cluster:
//! - `spec.entrypoint` names a template of `spec.templates` (required unless the spec runs a
//!   `workflowTemplateRef`, whose template may give it);
//! - `spec.onExit`, and `onExit` of each step and task, name templates;
//! - every step's and DAG task's `template` names a template of `spec.templates`.
//!
//! A reference through `templateRef` (a template of a WorkflowTemplate) or an `inline` template
//! is left to Argo: it lives outside the spec. Rules from Argo's validator
//! (`workflow/validate/validate.go`: entrypoint and template resolution).

use serde_json::{Map, Value};

/// The first reference in `spec` (a `WorkflowSpec`) that names no template, as a sentence that
/// names the field (`spec.templates[0].steps[1][0].template "nope": no such template in
/// spec.templates`), or `None`.
pub fn broken_reference(spec: &Map<String, Value>) -> Option<String> {
    let templates: Vec<&Map<String, Value>> = spec
        .get("templates")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let names: Vec<&str> = templates
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let missing = |field: &str, name: &str| {
        (!names.contains(&name))
            .then(|| format!("{field} {name:?}: no such template in spec.templates"))
    };
    let uses_template_ref = spec.contains_key("workflowTemplateRef");
    match spec.get("entrypoint").and_then(Value::as_str) {
        Some(e) if !e.is_empty() => {
            if !uses_template_ref && let Some(m) = missing("spec.entrypoint", e) {
                return Some(m);
            }
        }
        _ if !uses_template_ref => {
            return Some(
                "spec.entrypoint is required (the template the Workflow starts with)".into(),
            );
        }
        _ => {}
    }
    if let Some(on_exit) = spec.get("onExit").and_then(Value::as_str)
        && !uses_template_ref
        && let Some(m) = missing("spec.onExit", on_exit)
    {
        return Some(m);
    }
    for (i, t) in templates.iter().enumerate() {
        let steps = t
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (j, group) in steps.enumerate() {
            for (k, step) in group.as_array().into_iter().flatten().enumerate() {
                let field = format!("spec.templates[{i}].steps[{j}][{k}]");
                if let Some(m) = step_reference(step, &field, &missing) {
                    return Some(m);
                }
            }
        }
        let tasks = t
            .get("dag")
            .and_then(|d| d.get("tasks"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (j, task) in tasks.enumerate() {
            let field = format!("spec.templates[{i}].dag.tasks[{j}]");
            if let Some(m) = step_reference(task, &field, &missing) {
                return Some(m);
            }
        }
    }
    None
}

/// The broken reference of one step or task (`template`, `onExit`), if any.
fn step_reference(
    step: &Value,
    field: &str,
    missing: &impl Fn(&str, &str) -> Option<String>,
) -> Option<String> {
    for key in ["template", "onExit"] {
        if let Some(name) = step.get(key).and_then(Value::as_str)
            && let Some(m) = missing(&format!("{field}.{key}"), name)
        {
            return Some(m);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(spec: Value) -> Option<String> {
        broken_reference(spec.as_object().unwrap())
    }

    #[test]
    fn good_references_pass() {
        assert_eq!(
            check(json!({"entrypoint": "main", "onExit": "bye", "templates": [
                {"name": "main", "steps": [[{"name": "a", "template": "echo"}],
                    [{"name": "b", "templateRef": {"name": "wt", "template": "x"}}]]},
                {"name": "d", "dag": {"tasks": [{"name": "t", "template": "echo"}]}},
                {"name": "echo", "container": {"image": "busybox"}},
                {"name": "bye", "container": {"image": "busybox"}}]})),
            None
        );
        assert_eq!(check(json!({"workflowTemplateRef": {"name": "wt"}})), None);
    }

    #[test]
    fn broken_references_name_the_field() {
        assert_eq!(
            check(json!({"templates": [{"name": "main"}]})).unwrap(),
            "spec.entrypoint is required (the template the Workflow starts with)"
        );
        assert_eq!(
            check(json!({"entrypoint": "mian", "templates": [{"name": "main"}]})).unwrap(),
            "spec.entrypoint \"mian\": no such template in spec.templates"
        );
        assert_eq!(
            check(json!({"entrypoint": "main", "templates": [{"name": "main",
                "steps": [[{"name": "a", "template": "main"}], [{"name": "b", "template": "nope"}]]}]}))
            .unwrap(),
            "spec.templates[0].steps[1][0].template \"nope\": no such template in spec.templates"
        );
        assert_eq!(
            check(json!({"entrypoint": "main", "templates": [{"name": "main",
                "dag": {"tasks": [{"name": "a", "template": "gone"}]}}]}))
            .unwrap(),
            "spec.templates[0].dag.tasks[0].template \"gone\": no such template in spec.templates"
        );
        assert!(
            check(json!({"entrypoint": "main", "onExit": "x", "templates": [{"name": "main"}]}))
                .unwrap()
                .starts_with("spec.onExit \"x\"")
        );
    }
}
