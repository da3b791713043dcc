//! Framework for Kubernetes action runners.
//!
//! A runner binary builds a [`Manager`] from an [`ActionRunner`] and a [`StatusReporter`] and
//! runs it. The Manager reads the `RUNNER_*` environment variables once, the common ones
//! ([`Config`]) and the runner's own ([`ActionRunner::Config`], both through [`vars`]), and the
//! input manifest, hands them to the runner, starts the action, reports its status, waits for completion bounded by
//! `RUNNER_TIMEOUT`, reports the outcome and returns an [`Exit`] code. The contract follows
//! Capact's action runners. The only arguments a runner binary takes are `--help` and
//! `--version` ([`cli`]; [`Manager::about`] says what they print).
//!
//! ```no_run
//! use action_runner::{ConfigMapReporter, Manager};
//! # struct MyRunner;
//! # impl action_runner::ActionRunner for MyRunner {
//! #   type Config = action_runner::NoConfig;
//! #   type Args = serde_json::Value;
//! #   fn name(&self) -> &'static str { "my" }
//! #   async fn start(&mut self, _: action_runner::StartInput<serde_json::Value>)
//! #     -> Result<action_runner::StartOutput, action_runner::RunnerError> { unimplemented!() }
//! #   async fn wait_for_completion(&mut self, _: action_runner::WaitForCompletionInput)
//! #     -> Result<action_runner::WaitForCompletionOutput, action_runner::RunnerError> { unimplemented!() }
//! # }
//! fn main() -> std::process::ExitCode {
//!     action_runner::block_on(
//!         Manager::new(MyRunner, |client, ctx| {
//!             ConfigMapReporter::new(client, &ctx.platform.namespace, &ctx.name)
//!         })
//!         .run(),
//!     )
//! }
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod identity;
pub mod input_file;
pub mod logging;
pub mod manager;
pub mod manifest;
pub mod runner;
pub mod status;
pub mod validation;
pub mod vars;

pub use cli::About;
pub use config::{Config, ProcessEnv, Required, Variable};
pub use context::{ExecutionContext, KubernetesPlatform};
pub use error::{Exit, RunnerError};
pub use identity::InputDigest;
pub use manager::{Manager, block_on};
pub use runner::{
    ActionRunner, Activity, FromManifest, NoConfig, Progress, StartInput, StartOutput,
    WaitForCompletionInput, WaitForCompletionOutput,
};
pub use status::{ActionStatus, ConfigMapReporter, NoopReporter, Phase, Reason, StatusReporter};

/// The README's code samples, compiled as doctests (the "Adding a runner" sample among them).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeSamples;
