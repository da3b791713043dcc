//! The Kubernetes client every runner uses.
//!
//! It is kube's own client stack (`kube::Client::try_from(Config)`: TLS from the kubeconfig or
//! the in-cluster ServiceAccount, connect/read/write timeouts, retries of 429 and 503, token and
//! exec-plugin authentication, impersonation headers) with one difference: the TCP connections
//! are opened with `TCP_NODELAY`. kube 5 leaves Nagle's algorithm on
//! (<https://github.com/kube-rs/kube/issues/2056>), so a request written in more than one segment
//! on a fresh connection waits for the API server's delayed ACK, about 40 ms on Linux. A runner
//! pays that on its final status PATCH, which needs a new connection because the watch holds the
//! first one (HTTP/1.1); `hack/bench.sh` measured the completion notice at 51 ms with Nagle and
//! 15 ms without. Go's `net` package sets `TCP_NODELAY` by default, so the Go peers never paid it.
//!
//! Left out of kube's stack: its HTTP tracing layer (whose events the runners switch off
//! anyway) and the expiry kube records for client certificates an exec plugin hands out (a
//! runner lives for one action, far shorter than such certificates). A kubeconfig with a
//! `proxy-url` falls back to kube's default stack (proxy tunnelling is not rebuilt here).

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use tower::{BoxError, ServiceBuilder};

/// A client for the cluster `Config::infer` finds: the `KUBECONFIG` file(s) or
/// `~/.kube/config`, else the in-cluster ServiceAccount (`KUBERNETES_SERVICE_HOST` and
/// `/var/run/secrets/kubernetes.io/serviceaccount`).
///
/// # Errors
/// No usable configuration found, or its TLS or authentication settings cannot be used.
pub async fn infer() -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    from_config(config)
}

/// A client for `config`, with `TCP_NODELAY` set on its connections (see the module docs).
///
/// # Errors
/// The TLS settings (CA, client certificate) or the authentication settings cannot be used.
pub fn from_config(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| tower::retry::RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}
