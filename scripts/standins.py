#!/usr/bin/env python3
"""Local stand-ins for what the AWS emulator (moto) cannot do, so the demo shows the whole lab.

Not part of streamstack: these play, through the AWS API only, what AWS itself would do.

  standins.py host     --endpoint URL --region R --stack S
      What a booted instance does, as far as AWS can see: for every running instance of the
      stack, read its user-data, send its sample_data records to the flow that watches the
      sample file (PutRecords to a stream, PutRecordBatch to a direct delivery), then tag the
      instance streamstack:bootstrap=ok, as the real user-data does when the agent runs.

  standins.py firehose --endpoint URL --region R --stack S
      What Firehose does for a delivery that reads a Kinesis stream (moto never reads it):
      read the stream from TRIM_HORIZON, wait out the buffering interval, and write the records
      to the bucket under the prefix (Firehose's YYYY/MM/DD/HH/ layout when the prefix has no
      timestamp), gzip-compressed when the delivery says GZIP, in objects no larger than the
      buffering size.

Runs with the moto venv's python (boto3 comes with moto[server]).
"""

import argparse
import base64
import datetime
import fnmatch
import gzip
import json
import re
import sys
import time
import uuid

import boto3

CITIES = [
    "Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju", "Ulsan", "Suwon", "Jeju",
    "Tokyo", "Osaka", "Taipei", "Singapore", "Sydney", "London", "Paris", "Berlin", "Madrid",
    "Toronto", "Chicago",
]


def client(args, service):
    return boto3.client(
        service,
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )


def stack_filter(stack):
    return [{"Name": "tag:streamstack:stack", "Values": [stack]}]


def sample_records(n):
    """The records the user-data's sample loop writes (same fields, same formulas)."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        json.dumps(
            {
                "city": CITIES[i % len(CITIES)],
                "temperature_c": (i * 7) % 40 - 5,
                "humidity_pct": 35 + (i * 13) % 60,
                "observed_at": now,
            },
            separators=(",", ":"),
        )
        + "\n"
        for i in range(n)
    ]


def host(args):
    ec2 = client(args, "ec2")
    kinesis = client(args, "kinesis")
    firehose = client(args, "firehose")
    reservations = ec2.describe_instances(
        Filters=stack_filter(args.stack)
        + [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances:
        sys.exit(f"no running instance of stack {args.stack}")
    for inst in instances:
        iid = inst["InstanceId"]
        attr = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")
        script = base64.b64decode(attr["UserData"]["Value"]).decode()
        agent = json.loads(
            script.split("<<'STREAMSTACK_AGENT_JSON'\n", 1)[1].split("\nSTREAMSTACK_AGENT_JSON\n", 1)[0]
        )
        sample = re.search(r"^sample_file='([^']*)'$", script, re.M)
        count = re.search(r"\$\(seq 0 (\d+)\)", script)
        if sample and count:
            path, n = sample.group(1), int(count.group(1)) + 1
            flow = next(
                (f for f in agent["flows"] if fnmatch.fnmatch(path, f["filePattern"])), None
            )
            records = sample_records(n)
            if flow and "kinesisStream" in flow:
                kinesis.put_records(
                    StreamName=flow["kinesisStream"],
                    Records=[
                        {"Data": r.encode(), "PartitionKey": f"{iid}-{i}"}
                        for i, r in enumerate(records)
                    ],
                )
                print(f"host {iid}: {n} records from {path} to stream {flow['kinesisStream']}")
            elif flow and "deliveryStream" in flow:
                firehose.put_record_batch(
                    DeliveryStreamName=flow["deliveryStream"],
                    Records=[{"Data": r.encode()} for r in records],
                )
                print(f"host {iid}: {n} records from {path} to delivery {flow['deliveryStream']}")
        ec2.create_tags(
            Resources=[iid], Tags=[{"Key": "streamstack:bootstrap", "Value": "ok"}]
        )
        print(f"host {iid}: tagged streamstack:bootstrap=ok")


def read_stream(kinesis, name):
    records = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=10000)
            records.extend(page["Records"])
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break
            it = page.get("NextShardIterator")
    return records


def firehose(args):
    fh = client(args, "firehose")
    kinesis = client(args, "kinesis")
    s3 = client(args, "s3")
    names = fh.list_delivery_streams(Limit=100)["DeliveryStreamNames"]
    for name in names:
        tags = {
            t["Key"]: t["Value"]
            for t in fh.list_tags_for_delivery_stream(DeliveryStreamName=name)["Tags"]
        }
        if tags.get("streamstack:stack") != args.stack:
            continue
        d = fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]
        source = d.get("Source", {}).get("KinesisStreamSourceDescription")
        if not source:
            continue  # direct deliveries: moto writes those itself
        stream = source["KinesisStreamARN"].rsplit("/", 1)[1]
        dest = d["Destinations"][0]["ExtendedS3DestinationDescription"]
        records = read_stream(kinesis, stream)
        if not records:
            print(f"firehose {name}: nothing in stream {stream}")
            continue
        hints = dest.get("BufferingHints", {})
        interval = hints.get("IntervalInSeconds", 300)
        size = hints.get("SizeInMBs", 5) * 1024 * 1024
        oldest = min(r["ApproximateArrivalTimestamp"] for r in records)
        waited = (datetime.datetime.now(datetime.timezone.utc) - oldest).total_seconds()
        if waited < interval:
            print(f"firehose {name}: buffering {interval - waited:.0f} s (interval_seconds={interval})")
            time.sleep(interval - waited)
        bucket = dest["BucketARN"].split(":::", 1)[1]
        prefix = dest.get("Prefix") or ""
        now = datetime.datetime.now(datetime.timezone.utc)
        if "!{timestamp:" not in prefix:
            prefix += now.strftime("%Y/%m/%d/%H/")
        prefix = re.sub(r"!\{[^}]*\}", lambda m: now.strftime("%Y/%m/%d/%H"), prefix)
        gz = dest.get("CompressionFormat") == "GZIP"
        objects, batch = [], b""
        for r in records:
            if batch and len(batch) + len(r["Data"]) > size:
                objects.append(batch)
                batch = b""
            batch += r["Data"]
        objects.append(batch)
        for body in objects:
            key = f"{prefix}{name}-1-{now.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}" + (".gz" if gz else "")
            s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if gz else body)
            print(f"firehose {name}: {len(records)} records from {stream} to s3://{bucket}/{key}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["host", "firehose"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--stack", required=True)
    args = p.parse_args()
    {"host": host, "firehose": firehose}[args.what](args)


if __name__ == "__main__":
    main()
