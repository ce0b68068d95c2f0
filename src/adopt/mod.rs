//! From the console to code: `init --from-live` reads a pipeline somebody clicked together and
//! writes a spec that describes it ([`from_live`]), and `adopt` takes the resources that spec
//! names as the stack's ([`takeover`]): it tags them (and makes the in-place changes the spec asks
//! for), never creating, deleting or replacing anything unless told to.
//!
//! Decisions (see README "From the console to code in one command"):
//! - Only resources whose physical name is the spec's are adopted: buckets, streams, deliveries
//!   and their error-log groups (the kinds whose name is their identity and appears in a spec).
//!   Roles and instance profiles streamstack derives have streamstack's names under the
//!   `/streamstack/` path, which IAM cannot give an existing role; the console's roles (and their
//!   `*FullAccess` managed policies) are left as they are, and `apply` creates the derived
//!   least-privilege roles and points the adopted delivery at its own in place.
//! - An EC2 instance cannot be adopted without being replaced (streamstack's hosts are known by
//!   tag, their user-data is part of what they are, and EC2 cannot change it on a running
//!   instance): `init --from-live` writes what it read of each instance as a commented `hosts:`
//!   entry and says so, and adopt never touches an instance.
//! - A resource tagged by another stack (`streamstack:stack`), or made by CloudFormation
//!   (`aws:cloudformation:*`), is refused before anything is written.

pub mod from_live;
pub mod takeover;
