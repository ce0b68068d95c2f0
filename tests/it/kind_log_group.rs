//! The log-group kind (a delivery's `error_logging`) against moto: created with its retention,
//! log stream and tags, read back exactly as desired, drift shown and repaired, a group removed
//! from the spec still found, a same-named foreign group refused and never touched, deleted.

use std::collections::HashMap;

use crate::support::Sandbox;
use streamstack::kinds::log_group::{self, LogGroupProps};
use streamstack::kinds::{Cx, Live};
use streamstack::model::{Address, Model, Resource};

const SPEC: &str = r#"
version: 1
stack: lg
tags: { owner: tests }
buckets:
  logs: {}
streams:
  events: {}
deliveries:
  archive: { from: events, to: logs, error_logging: { retention_days: 30 } }
  quiet: { from: direct, to: logs, error_logging: false }
"#;

fn group(model: &Model, key: &str) -> Resource {
    model
        .get(&Address::new(log_group::KIND, key))
        .cloned()
        .unwrap_or_else(|| panic!("log_group.{key} in the model"))
}

async fn discover(cx: &Cx, model: &Model) -> Vec<Live> {
    log_group::discover(cx, model).await.expect("discover")
}

fn props(l: &Live) -> &LogGroupProps {
    l.resource
        .props
        .get::<LogGroupProps>()
        .expect("log group props")
}

#[tokio::test]
async fn log_group_lifecycle_drift_orphan_and_foreign() {
    let sb = Sandbox::passthrough();
    let cx = sb.cx("lg");
    let model = sb.model(SPEC);
    // Only the delivery with error logging gets a group.
    assert!(model.get(&Address::new(log_group::KIND, "quiet")).is_none());
    let want = group(&model, "archive");
    assert_eq!(want.name, "/aws/kinesisfirehose/lg-archive");

    log_group::create(&cx, &want, &model).await.expect("create");
    let found = discover(&cx, &model).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let live = &found[0];
    assert!(live.ours);
    assert_eq!(live.resource.address, want.address);
    assert_eq!(live.resource.tags, want.tags);
    assert_eq!(live.resource.props, want.props, "reads back as desired");
    assert_eq!(props(live).retention_days, Some(30));
    assert_eq!(props(live).log_stream, "DestinationDelivery");

    // Drift out of band: retention changed, the log stream deleted, a tag removed.
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sb.config);
    logs.put_retention_policy()
        .log_group_name(&want.name)
        .retention_in_days(1)
        .send()
        .await
        .expect("retention");
    logs.delete_log_stream()
        .log_group_name(&want.name)
        .log_stream_name("DestinationDelivery")
        .send()
        .await
        .expect("delete stream");
    logs.untag_resource()
        .resource_arn(&live.id)
        .tag_keys("owner")
        .send()
        .await
        .expect("untag");
    let drifted = discover(&cx, &model).await.remove(0);
    assert_eq!(props(&drifted).retention_days, Some(1));
    assert_eq!(props(&drifted).log_stream, "");
    assert!(!drifted.resource.tags.contains_key("owner"));
    log_group::update(&cx, &want, &drifted)
        .await
        .expect("update");
    let repaired = discover(&cx, &model).await.remove(0);
    assert_eq!(repaired.resource.props, want.props);
    assert_eq!(repaired.resource.tags, want.tags);

    // Gone from the spec: still found by the stack's prefix and its tag, under its old address.
    let empty = sb.model("version: 1\nstack: lg\n");
    let orphans = discover(&cx, &empty).await;
    assert_eq!(orphans.len(), 1);
    assert!(orphans[0].ours);
    assert_eq!(orphans[0].address().to_string(), "log_group.archive");

    log_group::delete(&cx, &orphans[0]).await.expect("delete");
    assert!(discover(&cx, &model).await.is_empty());
    // Deleting again is not an error.
    log_group::delete(&cx, &orphans[0])
        .await
        .expect("delete twice");

    // A same-named group that is not ours: found, not ours, and create refuses it untouched.
    // (A fresh name: moto keeps a deleted group's tags for a new group of the same name.)
    let model = sb.model(&SPEC.replace("stack: lg", "stack: lg2"));
    let want = group(&model, "archive");
    let cx = sb.cx("lg2");
    logs.create_log_group()
        .log_group_name(&want.name)
        .set_tags(Some(HashMap::from([(
            "team".to_string(),
            "someone-else".to_string(),
        )])))
        .send()
        .await
        .expect("foreign group");
    let foreign = discover(&cx, &model).await;
    assert_eq!(foreign.len(), 1);
    assert!(!foreign[0].ours);
    sb.proxy.reset_calls();
    let err = log_group::create(&cx, &want, &model)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("not tagged as this stack's"),
        "{err}"
    );
    let writes: Vec<String> = sb
        .proxy
        .write_call_names()
        .into_iter()
        .filter(|c| c != "logs:CreateLogGroup")
        .collect();
    assert!(writes.is_empty(), "touched the foreign group: {writes:?}");
}
