//! Discovery finds a stack's resources by their names and its tags, never by reading every
//! resource of the account: a first plan in a crowded account reads none of the others', and a
//! foreign resource it may not read does not fail the plan.

use futures::StreamExt;

use crate::support::cli::*;
use crate::support::proxy::ProxyConfig;
use crate::support::Sandbox;

const CROWD: &str = "version: 1\nstack: crowd\nregion: eu-west-1\n\
    buckets:\n  raw: { force_destroy: true }\n\
    streams:\n  events: { mode: provisioned, shards: 1 }\n\
    deliveries:\n  events-to-s3: { from: events, to: raw }\n";

/// Creates `names` as one-shard streams with the SDK, eight at a time.
fn create_streams(sb: &Sandbox, names: Vec<String>) {
    rt().block_on(async {
        let k = aws_sdk_kinesis::Client::new(&sdk(sb, "eu-west-1"));
        let created: Vec<_> = futures::stream::iter(names.into_iter().map(|n| {
            let k = k.clone();
            async move {
                k.create_stream()
                    .stream_name(&n)
                    .shard_count(1)
                    .send()
                    .await
                    .map_err(|e| format!("{n}: {e:?}"))
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
        for c in created {
            c.expect("create a foreign stream");
        }
    });
}

#[test]
fn a_first_plan_among_200_foreign_streams_reads_none_of_their_tags() {
    let sb = Sandbox::passthrough();
    let mut foreign: Vec<String> = (0..200).map(|i| format!("team-{i:03}")).collect();
    // Named like the stack's own (`crowd-`), but another team's, which we may not read.
    foreign.push("crowd-theirs".into());
    create_streams(&sb, foreign);
    let spec = spec_file(CROWD);
    sb.proxy
        .fail_times("kinesis:DescribeStreamSummary", "AccessDeniedException", 1);
    sb.proxy.reset_calls();
    let plan = plan_json(&sb, &spec.path);
    let got = actions(&plan);
    assert!(
        got.contains(&("stream.events".into(), "create".into())),
        "{got:?}"
    );
    let tag_reads = sb.proxy.calls_of("kinesis:ListTagsForStream");
    assert!(tag_reads.is_empty(), "{} tag reads", tag_reads.len());
    // Only the one stream named like the stack's was described (and refused).
    let described = sb.proxy.calls_of("kinesis:DescribeStreamSummary");
    assert_eq!(described.len(), 1, "{described:?}");
    assert_eq!(described[0].status, 400, "{described:?}");
}

fn moved_delivery(to: &str) -> String {
    format!(
        "version: 1\nstack: fresh\nregion: eu-west-1\n\
         buckets:\n  first: {{ force_destroy: true }}\n  second: {{ force_destroy: true }}\n\
         deliveries:\n  raw: {{ from: direct, to: {to}, error_logging: false }}\n"
    )
}

/// IAM is eventually consistent: right after an apply changed a role's policy, GetRolePolicy
/// may still answer the document before it. The plan confirms the difference with targeted
/// re-reads instead of reporting an update.
#[test]
fn a_plan_right_after_apply_does_not_report_a_stale_policy_as_drift() {
    let sb = Sandbox::new(ProxyConfig {
        policy_stale: 2,
        ..ProxyConfig::default()
    });
    let spec = spec_file(&moved_delivery("first"));
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    // The delivery's role may now write to the second bucket instead: PutRolePolicy.
    rewrite(&spec, &moved_delivery("second"));
    ok(&sb, &["apply", "--auto-approve", p(&spec.path)]);
    sb.proxy.reset_calls();
    let o = ss(&sb, &["plan", "--detailed-exitcode", p(&spec.path)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Both stale answers were given to this plan, and a third read saw the new document.
    assert_eq!(sb.proxy.emulated("policy-stale"), 2);
    assert_eq!(sb.proxy.calls_of("iam:GetRolePolicy").len(), 3);
    ok(&sb, &["destroy", "--auto-approve", p(&spec.path)]);
}
