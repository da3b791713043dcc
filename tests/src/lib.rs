//! The test harness of the end-to-end tests (`tests/tests/*_e2e.rs`) and of the bench.
//!
//! Every end-to-end test runs in a [`test_env::TestEnv`]: a fresh namespace, an administrator's
//! client and a scratch directory, on the bare API server of the test process or on the real
//! local cluster ([`test_env::Backend`]). `docs/testing.md` says how to write a test with it.
//!
//! - [`test_env`]: the environment, and the status ConfigMap the runners report to;
//! - [`argo`], [`helm`]: what the Argo and Helm tests do in it;
//! - [`cluster`]: the local cluster, its Jobs and pods, and the honest skip
//!   ([`cluster::record_skip`]);
//! - [`control_plane`]: the bare API server (etcd and kube-apiserver on loopback);
//! - [`controllers`]: stand-ins for the controllers the bare API server lacks;
//! - [`deploy`]: `deploy/` as the tests apply it; [`deployed_runner`]: a runner deployed so on
//!   the bare API server, run in its Job's pod's place;
//! - [`fixtures`]: charts, chart repositories, an OCI registry, hostile input;
//! - [`process`]: the runner processes; [`tools`]: where the pinned tools and the runner
//!   binaries are.

pub mod argo;
pub mod cluster;
pub mod control_plane;
pub mod controllers;
pub mod deploy;
pub mod deployed_runner;
pub mod faults;
pub mod fixtures;
pub mod helm;
pub mod process;
pub mod test_env;
pub mod tools;
