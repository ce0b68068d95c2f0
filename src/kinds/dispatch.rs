//! Dispatch from a kind to its module.

use super::*;

/// Attributes whose change forces a replacement, per kind.
pub fn replace_on(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Bucket => bucket::REPLACE_ON,
        Kind::Stream => stream::REPLACE_ON,
        Kind::Delivery => delivery::REPLACE_ON,
        Kind::HostRole | Kind::DeliveryRole => role::REPLACE_ON,
        Kind::InstanceProfile => instance_profile::REPLACE_ON,
        Kind::SecurityGroup => security_group::REPLACE_ON,
        Kind::Host => host::REPLACE_ON,
    }
}

/// Everything live that belongs to the stack or has one of its names; kinds are read concurrently.
pub async fn discover_all(cx: &Cx, desired: &Model) -> Result<Vec<Live>, AwsError> {
    let (buckets, streams, deliveries, roles, profiles, groups, hosts) = futures::try_join!(
        bucket::discover(cx, desired),
        stream::discover(cx, desired),
        delivery::discover(cx, desired),
        role::discover(cx, desired),
        instance_profile::discover(cx, desired),
        security_group::discover(cx, desired),
        host::discover(cx, desired),
    )?;
    let mut all = Vec::new();
    for part in [buckets, streams, deliveries, roles, profiles, groups, hosts] {
        all.extend(part);
    }
    all.sort_by(|a, b| (a.address(), &a.id).cmp(&(b.address(), &b.id)));
    Ok(all)
}

pub async fn create(cx: &Cx, r: &Resource, desired: &Model) -> Result<(), AwsError> {
    match r.address.kind {
        Kind::Bucket => bucket::create(cx, r, desired).await,
        Kind::Stream => stream::create(cx, r, desired).await,
        Kind::Delivery => delivery::create(cx, r, desired).await,
        Kind::HostRole | Kind::DeliveryRole => role::create(cx, r, desired).await,
        Kind::InstanceProfile => instance_profile::create(cx, r, desired).await,
        Kind::SecurityGroup => security_group::create(cx, r, desired).await,
        Kind::Host => host::create(cx, r, desired).await,
    }
}

pub async fn update(cx: &Cx, r: &Resource, live: &Live) -> Result<(), AwsError> {
    match r.address.kind {
        Kind::Bucket => bucket::update(cx, r, live).await,
        Kind::Stream => stream::update(cx, r, live).await,
        Kind::Delivery => delivery::update(cx, r, live).await,
        Kind::HostRole | Kind::DeliveryRole => role::update(cx, r, live).await,
        Kind::InstanceProfile => instance_profile::update(cx, r, live).await,
        Kind::SecurityGroup => security_group::update(cx, r, live).await,
        Kind::Host => host::update(cx, r, live).await,
    }
}

pub async fn delete(cx: &Cx, live: &Live) -> Result<(), AwsError> {
    match live.address().kind {
        Kind::Bucket => bucket::delete(cx, live).await,
        Kind::Stream => stream::delete(cx, live).await,
        Kind::Delivery => delivery::delete(cx, live).await,
        Kind::HostRole | Kind::DeliveryRole => role::delete(cx, live).await,
        Kind::InstanceProfile => instance_profile::delete(cx, live).await,
        Kind::SecurityGroup => security_group::delete(cx, live).await,
        Kind::Host => host::delete(cx, live).await,
    }
}
