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
//! - An EC2 instance is adopted by id, not by name: `init --from-live` writes a host with
//!   `instance_id:`, the host kind reads that instance while it is untagged (a candidate that is
//!   not ours, at the host's address), and adopt tags it (`CreateTags` only, with
//!   `streamstack:adopted=true`). Its user-data is not streamstack's and EC2 cannot change it on a
//!   running instance, so an adopted host is never compared on it (nor on its key pair): no
//!   replacement. `apply` swaps the derived instance profile and security group onto it in place
//!   (the plan notes it as a tightening); the console's profile, role and group are left as
//!   they are (not the stack's); `destroy` terminates the instance.
//! - A resource tagged by another stack (`streamstack:stack`), or made by CloudFormation
//!   (`aws:cloudformation:*`), is refused before anything is written.

pub mod from_live;
pub mod takeover;
