//! `deliveries:`: per delivery a Firehose delivery stream, the IAM role Firehose assumes (with
//! its least-privilege policy), and with `error_logging` the log group it logs errors to.

use std::collections::BTreeSet;

use super::deriver::{customer_key, expected_keys, p, Deriver, Origin};
use super::names::delivery_role_name;
use crate::iam;
use crate::kinds::bucket;
use crate::kinds::delivery::{self, DeliveryProps, DeliverySourceProps, ErrorLoggingProps};
use crate::kinds::log_group::{self, LogGroupProps};
use crate::kinds::role;
use crate::kinds::stream;
use crate::model::{Address, Props};
use crate::spec::rules;
use crate::spec::types::{DeliverySource, DeliverySpec};

/// What a delivery reads from and writes to, resolved from its references.
struct Ends {
    /// The stream it reads (key, physical name); `None` for `from: direct`.
    source: Option<(String, String)>,
    bucket_name: String,
    /// The stream and the bucket.
    deps: BTreeSet<Address>,
}

pub(super) fn deliveries(d: &mut Deriver) {
    for (key, del) in &d.spec.deliveries {
        let at = Origin::entry("deliveries", del.name.is_some());
        let name = d.delivery_name(key);
        let Some(name) = d.entry_name(at, key, name, rules::delivery_name) else {
            continue;
        };
        let Some(ends) = ends(d, key, del) else {
            continue;
        };
        delivery(d, at, key, del, name, ends);
    }
}

/// Resolves `from` and `to`; `None` (reported, unless the target already failed to decode)
/// when either names nothing.
fn ends(d: &mut Deriver, key: &str, del: &DeliverySpec) -> Option<Ends> {
    let mut deps = BTreeSet::new();
    let source = match &del.from {
        DeliverySource::Direct => None,
        DeliverySource::Stream(s) => match d.stream_name(s) {
            Some(stream_name) => {
                deps.insert(Address::new(stream::KIND, s));
                Some((s.clone(), stream_name))
            }
            None if d.spec.is_undecoded("streams", s) => return None,
            None => {
                let expected = expected_keys(d.spec.streams.keys(), Some("direct"));
                let at = p(&["deliveries", key, "from"]);
                d.err(at, false, format!("no stream named `{s}`"), Some(expected));
                return None;
            }
        },
    };
    let Some(bucket_name) = d.bucket_name(&del.to) else {
        if !d.spec.is_undecoded("buckets", &del.to) {
            let expected = expected_keys(d.spec.buckets.keys(), None);
            let at = p(&["deliveries", key, "to"]);
            d.err(
                at,
                false,
                format!("no bucket named `{}`", del.to),
                Some(expected),
            );
        }
        return None;
    };
    deps.insert(Address::new(bucket::KIND, &del.to));
    Some(Ends {
        source,
        bucket_name,
        deps,
    })
}

/// The delivery, its role and its error log group.
fn delivery(d: &mut Deriver, at: Origin, key: &str, del: &DeliverySpec, name: String, ends: Ends) {
    let Ends {
        source,
        bucket_name,
        mut deps,
    } = ends;
    let role_name = d.env.iam_name(delivery_role_name(&d.spec.stack, key));
    d.check_name(at.derived(), key, rules::role_name(&role_name));
    let log_group_name = log_group::name_for(&name);
    if let Some(logging) = &del.error_logging {
        let address = Address::new(log_group::KIND, key);
        let props = LogGroupProps {
            arn: d.env.log_group_arn(&log_group_name),
            retention_days: Some(logging.retention_days),
            log_stream: log_group::ERROR_LOG_STREAM.into(),
        };
        // The log group is named after the delivery, so named where the delivery is.
        d.add(
            at,
            address.clone(),
            log_group_name.clone(),
            BTreeSet::new(),
            Props::new(props),
        );
        deps.insert(address);
    }
    let access = iam::DeliveryAccess {
        delivery_name: name.clone(),
        log_group: del.error_logging.map(|_| log_group_name.clone()),
        stream: source.as_ref().map(|(_, n)| n.clone()),
        stream_kms_key: source
            .as_ref()
            .and_then(|(k, _)| d.spec.streams.get(k))
            .and_then(|s| customer_key(&s.encryption)),
        bucket: bucket_name.clone(),
    };
    let role_address = Address::new(role::DELIVERY_ROLE, key);
    let role_arn = d.env.role_arn(&role_name);
    let trust = iam::firehose_trust_policy(&d.env);
    let policy = iam::delivery_policy(&d.env, &access);
    d.add_role(at, role_address.clone(), role_name.clone(), trust, policy);
    deps.insert(role_address);
    let props = DeliveryProps {
        arn: d.env.delivery_arn(&name),
        source: source.map(|(_, stream_name)| DeliverySourceProps {
            stream_arn: d.env.stream_arn(&stream_name),
            stream_name,
        }),
        role_name,
        role_arn,
        bucket_arn: d.env.bucket_arn(&bucket_name),
        bucket_name,
        prefix: del.prefix.clone(),
        error_prefix: del.error_prefix.clone(),
        buffering: del.buffering,
        compression: del.compression,
        error_logging: del.error_logging.map(|_| ErrorLoggingProps {
            log_group: log_group_name,
            log_stream: log_group::ERROR_LOG_STREAM.into(),
        }),
    };
    d.add(
        at,
        Address::new(delivery::KIND, key),
        name,
        deps,
        Props::new(props),
    );
}
