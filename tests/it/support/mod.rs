//! Shared support for integration tests (`mod support;` at the top of a test file).
//!
//! * [`moto`]: the moto server ([`moto::MotoServer::shared`]), [`moto::unique_account_id`],
//!   [`moto::sdk_config`] and [`moto::s3_client`].
//! * [`proxy`]: the realism proxy that makes moto answer like AWS in time (CREATING/UPDATING/
//!   DELETING phases, IAM propagation, pending instances, each for a number of calls), counts
//!   calls, holds a call on demand, and isolates tests by adding `x-moto-account-id` to every
//!   request.
//! * [`inventory`]: what of a stack exists, read with the SDK alone (the proof that nothing
//!   remains after a destroy).
//! * [`wait`]: waiting for an event with a deadline that fails the test with what it saw last.
//! * [`Sandbox`]: the usual combination: shared moto + a proxy in a fresh account + SDK config.
//!
//! ```ignore
//! let sb = Sandbox::new(ProxyConfig { stream_creating: 3, ..Default::default() });
//! let kinesis = aws_sdk_kinesis::Client::new(&sb.config);
//! // ... or run the CLI with `--endpoint-url sb.endpoint()` / env AWS_ENDPOINT_URL.
//! assert_eq!(sb.proxy.write_calls().len(), 1);
//! ```
#![allow(dead_code)]

pub mod cli;
pub mod fleet_emulation;
pub mod inventory;
pub mod moto;
pub mod pricing;
pub mod proxy;
pub mod resign;
pub mod timed;
pub mod wait;

use std::time::Duration;

use aws_config::SdkConfig;

use self::moto::{sdk_config, unique_account_id, MotoServer, REGION};
use self::proxy::{Proxy, ProxyConfig};

/// An isolated view of the shared moto server: a proxy bound to a fresh account.
pub struct Sandbox {
    pub proxy: Proxy,
    pub account_id: String,
    /// SDK configuration pointing at the proxy (region [`REGION`]).
    pub config: SdkConfig,
}

impl Sandbox {
    /// A proxy with `config` in front of the shared moto server; a unique account id is filled in
    /// when `config.account_id` is `None`. Panics (failing the test) if moto is unavailable.
    pub fn new(mut config: ProxyConfig) -> Sandbox {
        let account_id = config
            .account_id
            .get_or_insert_with(unique_account_id)
            .clone();
        let moto = MotoServer::shared().endpoint_for(&account_id);
        let proxy = Proxy::start(moto, config).expect("start the realism proxy");
        let config = sdk_config(&proxy.endpoint(), REGION);
        Sandbox {
            proxy,
            account_id,
            config,
        }
    }

    /// No emulated delays: moto as it is, in a fresh account, with call accounting.
    pub fn passthrough() -> Sandbox {
        Sandbox::new(ProxyConfig::default())
    }

    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }

    /// A kinds context for `stack` in this sandbox's account and region, polling every 200 ms.
    pub fn cx(&self, stack: &str) -> streamstack::kinds::Cx {
        streamstack::kinds::Cx {
            clients: streamstack::aws::Clients::from_sdk_config(&self.config, true)
                .expect("clients"),
            env: streamstack::model::Env::new(&self.account_id, REGION, stack),
            stack: stack.into(),
            events: streamstack::events::Events::none(),
            timeouts: streamstack::kinds::Timeouts {
                poll: Duration::from_millis(200),
                ..Default::default()
            },
            journal: std::sync::Arc::new(streamstack::journal::Journal::in_memory()),
            tagged: Default::default(),
            reads: Default::default(),
            lookups: Default::default(),
        }
    }

    /// The desired model of spec `text` in this sandbox's account and region.
    pub fn model(&self, text: &str) -> streamstack::model::Model {
        let opts = streamstack::spec::LoadOptions {
            region: Some(REGION.into()),
            account_id: Some(self.account_id.clone()),
            fleet_region: None,
            vars: vec![],
            ambient_region: None,
        };
        match streamstack::derive::load_str("t.yaml", text, &opts) {
            Ok(v) => v.model,
            Err(d) => panic!("spec does not load: {d:?}"),
        }
    }

    /// A path-style S3 client for this sandbox.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        moto::s3_client(&self.config)
    }
}
