//! The integration tests, as one test binary so the AWS SDK is linked once.
//!
//! - `spec_corpus`, `render`: the spec layer and rendered artefacts, offline.
//! - `proxy`: the realism proxy itself (tests/it/support/proxy.rs) against moto.
//! - `kind_*`: each resource kind's discover/create/update/delete against moto.
//! - `lifecycle`: the CLI binary end to end against moto, as a user or CI job runs it.
//! - `quotas`: the classroom through a proxy that enforces AWS's request quotas.
//!
//! Every moto-backed test works in its own moto account through its own proxy, so they run in
//! parallel. See `support` for the moto launcher and the proxy.

// Tests and their helpers may panic: a failed expectation is a failed test (Cargo.toml denies
// these outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod adopt;
mod check;
mod cloudformation;
mod cost;
mod discovery;
mod external_hosts;
mod faults;
mod first_minutes;
mod fleet;
mod gitops;
mod kind_bucket_sg;
mod kind_delivery_iam;
mod kind_host;
mod kind_log_group;
mod lifecycle;
mod lock;
mod operator_policy;
mod plan_inputs;
mod proxy;
mod quotas;
mod render;
mod saved_plans;
mod spec_corpus;
mod stacksets;
mod tail;
mod teardown;
