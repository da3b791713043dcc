//! Logging setup: JSON lines by default, human-readable in dev mode; `RUST_LOG` honoured.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber, writing to standard error.
///
/// - `dev_mode == false`: one JSON object per line (`timestamp`, `level`, `target`, fields),
///   default level `info`.
/// - `dev_mode == true` (`RUNNER_LOGGER_DEV_MODE`): human-readable lines, default level `debug`.
///
/// `rust_log` (`RUST_LOG`, an [`EnvFilter`] directive, e.g. `info,kube=debug`) overrides the
/// default when it parses.
/// kube's own per-request error log (`kube_client::client::builder`) is off by default: the
/// runner's final error line carries the same cause, so a failure stays one line.
/// Calling it twice is harmless (the second call does nothing).
pub fn init(dev_mode: bool, rust_log: Option<&str>) {
    let default = if dev_mode {
        "debug,kube_client::client::builder=off"
    } else {
        "info,kube_client::client::builder=off"
    };
    let filter = rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if dev_mode {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    };
}
