//! The Kubernetes client every runner uses.
//!
//! It is kube's own client stack (`kube::Client::try_from(Config)`: TLS from the kubeconfig or
//! the in-cluster ServiceAccount, connect/read/write timeouts, retries of 429 and 503, token and
//! exec-plugin authentication, impersonation headers) with two differences:
//! - HTTP/2 is offered by ALPN beside HTTP/1.1 (kube 5 offers only HTTP/1.1). The API server
//!   speaks HTTP/2, so the watch a runner waits on and the requests it makes meanwhile and at the
//!   end (the final status PATCH, the Event) share one connection. Over HTTP/1.1 the watch holds
//!   its connection, and the final PATCH has to open a new one (TCP and TLS handshakes) just when
//!   the action has finished.
//! - TCP connections are opened with `TCP_NODELAY`. kube 5 leaves Nagle's algorithm on
//!   (<https://github.com/kube-rs/kube/issues/2056>), so a request written in more than one
//!   segment on a fresh connection waits for the API server's delayed ACK, about 40 ms on Linux.
//!   Go's `net` package sets `TCP_NODELAY` by default, so the Go peers never paid it.
//!
//! `hack/bench.sh` measures the difference as the completion notice (README, "Benchmark").
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

/// kube's rustls connector (`ConfigExt::rustls_https_connector_with_connector`: its TLS client
/// configuration and `tls-server-name`), offering HTTP/2 as well as HTTP/1.1 by ALPN.
fn https_connector(
    config: &kube::Config,
    http: HttpConnector,
) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, kube::Error> {
    // hyper-rustls sets ALPN (`h2`, `http/1.1`) itself from the versions enabled below.
    let tls = config.rustls_client_config()?;
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = name.clone().try_into().map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        builder =
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    Ok(builder.enable_all_versions().wrap_connector(http))
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
    let https = https_connector(&config, http)?;
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

/// The pause before a runner's watch starts again after an error: exponential from 0.8 s,
/// doubling, at most 5 s, with jitter, starting over after 2 minutes without errors.
///
/// kube-runtime's default (`watcher::DefaultBackoff`, after client-go's reflector) grows to
/// 30 s, which spares an API server that many controllers watch whole resources from. A runner
/// watches one object for one action, and a 30 s pause after an outage is up to 30 s added to
/// the action: measured in docs/faults.md (the API server down for 30 s).
pub fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(800))
        .with_max_delay(std::time::Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        kube::runtime::watcher::ExponentialBackoff::from(builder),
        std::time::Duration::from_secs(120),
    )
}
