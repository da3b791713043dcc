//! What a runner is told about the action it carries out.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The execution context of one action, built from the `RUNNER_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionContext {
    /// `RUNNER_CONTEXT_NAME`: the action's name. Runners name (or label) what they create with
    /// it, and the status ConfigMap has this name. An RFC 1123 subdomain.
    pub name: String,
    /// `RUNNER_CONTEXT_DRY_RUN`: validate only; persist nothing.
    pub dry_run: bool,
    /// `RUNNER_TIMEOUT`: bound on waiting for completion; `None` waits without bound.
    pub timeout: Option<Duration>,
    /// Kubernetes platform values (`RUNNER_CONTEXT_PLATFORM_*`).
    pub platform: KubernetesPlatform,
}

/// Kubernetes-specific context (`RUNNER_CONTEXT_PLATFORM_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesPlatform {
    /// `RUNNER_CONTEXT_PLATFORM_NAMESPACE`: every object the runner creates lives here.
    pub namespace: String,
    /// `RUNNER_CONTEXT_PLATFORM_SERVICE_ACCOUNT_NAME`: the ServiceAccount the action's workloads
    /// run as, when set.
    pub service_account_name: Option<String>,
    /// `RUNNER_CONTEXT_PLATFORM_OWNER_*`: owner set on every object the runner creates (for
    /// example the Job running the runner), so that deleting the owner garbage-collects them.
    pub owner_reference: Option<OwnerReference>,
}
