//! JSON Schema (draft-07, what yaml-language-server speaks) of the spec file. The checked-in copy
//! at `schema/streamstack.schema.json` must equal this output (a test keeps them in step), and a
//! test checks every section names exactly the keys the loader accepts.

use serde_json::{json, Map, Value};

use crate::spec::types::{Compression, Format, HostCredentials, Platform, LOG_RETENTION_DAYS};

const NAME_KEY: &str = "^[a-z][a-z0-9-]*$";

/// A string holding a template, accepted where the template renders to the value.
fn template() -> Value {
    json!({"type": "string", "pattern": "\\{\\{.*\\}\\}"})
}

fn templated_int(min: u64, max: u64, description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [{"type": "integer", "minimum": min, "maximum": max}, template()]
    })
}

fn templated_bool(description: &str) -> Value {
    json!({
        "description": description,
        "anyOf": [{"type": "boolean"}, template()]
    })
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// An object that takes only `properties`, of which `required` must be given.
fn object(required: &[&str], properties: Value) -> Value {
    closed(json!("object"), required, properties)
}

/// A section entry that may be left empty (`archive:` alone means all defaults).
fn object_or_null(properties: Value) -> Value {
    closed(json!(["object", "null"]), &[], properties)
}

fn closed(types: Value, required: &[&str], properties: Value) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), types);
    o.insert("additionalProperties".into(), json!(false));
    if !required.is_empty() {
        o.insert("required".into(), json!(required));
    }
    o.insert("properties".into(), properties);
    Value::Object(o)
}

fn keyed(description: &str, item: Value) -> Value {
    json!({
        "description": description,
        "type": "object",
        "propertyNames": {"pattern": NAME_KEY},
        "additionalProperties": item
    })
}

fn string_map(description: &str) -> Value {
    json!({
        "description": description,
        "type": "object",
        "additionalProperties": {"type": ["string", "number", "boolean"]}
    })
}

/// The schema as a JSON value.
pub fn schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://streamstack.dev/schema/streamstack.schema.json",
        "title": "streamstack spec",
        "description": "A Kinesis log pipeline: hosts running the Kinesis Agent → streams → Firehose deliveries → S3 buckets.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "stack"],
        "properties": {
            "version": {"const": 1},
            "stack": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,30}[a-z0-9]$", "description": "Prefix of every physical name."},
            "region": string("AWS region; else the SDK's region chain."),
            "tags": string_map("Tags added to every resource that takes tags."),
            "expires_after": {"type": "string", "pattern": "^[1-9][0-9]*[smhd]$", "description": "Duration stamped as a tag."},
            "vars": string_map("Defaults for {{ vars.NAME }}; --var NAME=VALUE overrides."),
            "buckets": keyed("S3 buckets.", bucket()),
            "streams": keyed("Kinesis data streams.", stream()),
            "deliveries": keyed("Firehose delivery streams.", delivery()),
            "hosts": keyed("EC2 hosts running the Kinesis Agent.", host())
        }
    })
}

fn bucket() -> Value {
    object_or_null(json!({
        "name": string("Physical name; default {stack}-{key}-{account_id}-{region}."),
        "force_destroy": templated_bool("destroy empties the bucket (every version, delete marker and upload) first."),
        "versioning": templated_bool("Enable S3 versioning."),
        "expire_after_days": templated_int(1, 36500, "Lifecycle rule: delete objects after this many days.")
    }))
}

fn stream() -> Value {
    object_or_null(json!({
        "name": string("Physical name; default {stack}-{key}."),
        "mode": {"enum": ["on_demand", "provisioned"], "default": "on_demand"},
        "shards": templated_int(1, 10000, "Shard count; required with provisioned, forbidden with on_demand."),
        "retention_hours": templated_int(24, 8760, "How long records are kept (default 24)."),
        "encryption": {
            "type": "string",
            "description": "aws_managed (default, alias/aws/kinesis), none, or a KMS key ARN or alias/NAME.",
            "default": "aws_managed"
        },
        "usage": object(&[], json!({
            "records_per_hour": templated_int(0, 3_600_000_000, "Records written per hour, for the cost estimate (default 20: the lab's sample)."),
            "record_bytes": templated_int(1, 10_485_760, "Bytes per record, for the cost estimate (default 95: one weather record)."),
            "reads_per_record": templated_int(0, 100, "Consumers reading each record, for the cost estimate (default 1: the delivery).")
        }))
    }))
}

fn delivery() -> Value {
    let compression: Vec<&str> = Compression::ALL.iter().map(|(n, _)| *n).collect();
    object(
        &["from", "to"],
        json!({
            "name": string("Physical name; default {stack}-{key}."),
            "from": string("A key of streams (Firehose reads the stream), or direct (the agent writes to Firehose)."),
            "to": string("A key of buckets."),
            "prefix": string("S3 key prefix; may use !{timestamp:...} and !{firehose:random-string}."),
            "error_prefix": string("S3 prefix for failed records; required when prefix uses !{...}."),
            "buffering": object(&[], json!({
                "size_mb": templated_int(1, 128, "Buffer size in MB (default 5)."),
                "interval_seconds": templated_int(0, 900, "Buffer interval in seconds (default 300).")
            })),
            "compression": {"enum": compression, "default": "UNCOMPRESSED"},
            "error_logging": {
                "description": "Firehose logs delivery errors to the CloudWatch Logs group /aws/kinesisfirehose/{delivery name} (default on, 14 days); false turns it off.",
                "oneOf": [
                    {"type": "boolean"},
                    object(&[], json!({
                        "retention_days": {"enum": LOG_RETENTION_DAYS, "default": 14, "description": "How long the log group keeps events."}
                    }))
                ]
            }
        }),
    )
}

fn host() -> Value {
    let mut host = host_fields();
    // An EC2 host needs an instance type; an external host takes none of the instance's
    // fields, and only it takes `credentials`.
    let ec2_only = ["instance_type", "image", "subnet", "ssh", "sample_data"];
    let not_given: Vec<Value> = ec2_only.iter().map(|k| json!({"required": [k]})).collect();
    host["allOf"] = json!([{
        "if": {"properties": {"platform": {"const": "external"}}, "required": ["platform"]},
        "then": {"not": {"anyOf": not_given}},
        "else": {"required": ["instance_type"], "not": {"required": ["credentials"]}}
    }]);
    host
}

fn host_fields() -> Value {
    object(
        &["flows"],
        json!({
            "platform": {"enum": Platform::NAMES, "default": "ec2", "description": "ec2 (default): an instance streamstack launches; external: a machine of yours, whose agent authenticates as an IAM user."},
            "credentials": {"enum": HostCredentials::NAMES, "description": "External hosts only: access_key (default), an IAM user whose key apply writes to --credentials-dir."},
            "instance_type": string("EC2 instance type such as t3.micro."),
            "image": string("al2023 (default), al2023-arm64, ami-..., or ssm:/parameter/name."),
            "subnet": string("Subnet id; default subnet of the default VPC unless given."),
            "ssh": object(&["from"], json!({
                "key_name": {"type": "string"},
                "from": {
                    "description": "CIDR block(s) allowed to reach port 22.",
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                }
            })),
            "flows": {"type": "array", "minItems": 1, "items": flow()},
            "sample_data": object(&["file"], json!({
                "file": {"type": "string"},
                "records": templated_int(1, 1000, "How many weather records to write (default 20).")
            })),
            "instance_id": {
                "type": "string",
                "pattern": "^i-([0-9a-fA-F]{8}|[0-9a-fA-F]{17})$",
                "description": "An existing instance this host adopts (streamstack adopt) instead of launching one; written by init --from-live --instance ID."
            },
            "usage": object(&[], json!({
                "volume_gb": templated_int(1, 65536, "The root EBS gp3 volume in GB, for the cost estimate (default 8).")
            }))
        }),
    )
}

fn flow() -> Value {
    object(
        &["files", "to"],
        json!({
            "files": string("Absolute file pattern; globs only in the file name."),
            "to": string("A key of streams, or of a direct delivery."),
            "format": {"enum": Format::NAMES, "default": "lines"},
            "fields": {"type": "array", "items": {"type": "string"}, "description": "Column names, with format csv."}
        }),
    )
}

/// The schema as pretty JSON with a trailing newline (the checked-in file's exact bytes).
pub fn schema_text() -> String {
    // `{:#}` is serde_json's pretty printer, which cannot fail on a `Value`.
    format!("{:#}\n", schema())
}
