//! The test harness: a bare control plane of its own for a test ([`control_plane`]), stand-ins
//! for the controllers it lacks ([`controllers`]), the real local cluster ([`cluster`]),
//! `deploy/` as the tests apply it ([`deploy`]), what the helm-runner tests share ([`helm`]), the runner processes ([`process`]), the pinned
//! tools ([`tools`]) and one test's [`World`].

pub mod cluster;
pub mod control_plane;
pub mod controllers;
pub mod deploy;
pub mod faults;
pub mod helm;
pub mod kubelet;
pub mod process;
pub mod tools;
pub mod world;

pub use control_plane::*;
pub use controllers::*;
pub use process::*;
pub use tools::*;
pub use world::*;
