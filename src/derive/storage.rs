//! `buckets:` and `streams:`: one bucket and one stream each, named, tagged and checked.

use std::collections::BTreeSet;

use super::deriver::{Deriver, Origin};
use crate::kinds::bucket::{self, BucketProps};
use crate::kinds::stream::{self, StreamProps};
use crate::model::{Address, Props, TAG_FORCE_DESTROY};
use crate::spec::rules;

pub(super) fn buckets(d: &mut Deriver) {
    for (key, b) in &d.spec.buckets {
        let at = Origin::entry("buckets", b.name.is_some());
        let name = d.bucket_name(key);
        let Some(name) = d.entry_name(at, key, name, rules::bucket_name) else {
            continue;
        };
        let bucket = d.add(
            at,
            Address::new(bucket::KIND, key),
            name,
            BTreeSet::new(),
            Props::new(BucketProps {
                versioning: b.versioning,
                force_destroy: b.force_destroy,
                expire_after_days: b.expire_after_days,
                sse_algorithm: "AES256".into(),
                block_public_access: true,
            }),
        );
        if b.force_destroy {
            bucket.tags.insert(TAG_FORCE_DESTROY.into(), "true".into());
        }
    }
}

pub(super) fn streams(d: &mut Deriver) {
    for (key, s) in &d.spec.streams {
        let at = Origin::entry("streams", s.name.is_some());
        let name = d.stream_name(key);
        let Some(name) = d.entry_name(at, key, name, rules::stream_name) else {
            continue;
        };
        let arn = d.env.stream_arn(&name);
        d.add(
            at,
            Address::new(stream::KIND, key),
            name,
            BTreeSet::new(),
            Props::new(StreamProps {
                arn,
                mode: s.mode,
                shards: s.shards,
                retention_hours: s.retention_hours,
                kms_key: s.encryption.key_id().map(str::to_string),
            }),
        );
    }
}
