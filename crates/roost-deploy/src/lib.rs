//! Declarative deployments (`roost apply`, `plan`, `destroy`): the
//! deployment file ([`model`]) and the plan from what the registry holds to
//! what the file describes ([`plan`]). Pure: reading the registry and making
//! the changes is `roost`'s (crates/roost/src/deploy.rs), through the
//! control plane like any client.
#![forbid(unsafe_code)]

pub mod model;
pub mod plan;

pub use model::{Deployment, FileError, FileErrors};
pub use plan::{destroy, plan, Actual, Change, Names, Plan};
