//! streamstack: infrastructure as code for AWS Kinesis log pipelines.
//!
//! Data flows one way: `spec` (the user's file) → `model` (the desired world as plain data) →
//! plan → executor → AWS. See CONTRIBUTING.md in the repository for the map.

pub mod adopt;
pub mod aws;
pub mod bill;
pub mod bootstrap;
pub mod budget;
pub mod cfn;
pub mod check;
/// The command line's definition (clap): flags, arguments and their help. Commands in
/// `src/commands/` are thin glue over the library.
pub mod cli;
pub mod cloudformation;
pub mod cost;
pub mod deploy;
pub mod derive;
pub mod diagnostics;
pub mod error;
pub mod events;
pub mod executor;
pub mod fleet;
pub mod iam;
pub mod journal;
pub mod kinds;
pub mod lock;
pub mod model;
pub mod operator_policy;
pub mod ops;
pub mod plan;
pub mod schema;
pub mod spec;
pub mod tail;
pub mod time;
pub mod ui;

#[cfg(test)]
mod layering;

pub use error::{Error, Result};
