#!/usr/bin/env python3
"""The end of scripts/fleet-test: each dock's ledger against its camera and the bucket.

Per dock (its `status --json` and `log --json`, written by fleet-test into the
dock's folder): every file verified, exactly one upload.verified event per
file, naming an object key under the officer its camera is registered to, the
camera file's size and SHA-256. In the bucket (every version listed): exactly
one object version per file and nothing else beside the docks' custody
checkpoints, each the verified version, its bytes downloaded and hashed equal
to the camera file. Prints a summary; exits 1 with one line on the first mismatch.
"""
import argparse
import collections
import concurrent.futures
import hashlib
import json
import os
import re
import sys

import boto3
from botocore.config import Config

VERIFIED = re.compile(r"^verified in the store as (?P<key>\S+) version (?P<version>\S+): size (?P<size>\d+), .* matches sha256 (?P<sha>[0-9a-f]{64})")


def fail(message):
    print(f"fleet-test: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--docks", type=int, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--registry-head", type=int, help="the registry head every dock reached: commits 1 to it, each one object")
    parser.add_argument("--fleet-status", help="`uploader fleet status --json` at dock-01, read after the silent dock stopped")
    parser.add_argument("--silent-dock", help="the dock stopped on purpose: the only one fleet status may show silent")
    args = parser.parse_args()

    # dock serial officer name size sha256, one camera file a line.
    camera = {}
    files_of_dock = collections.Counter()
    for line in open(args.manifest):
        dock, serial, officer, name, size, sha = line.split()
        camera[(serial, name)] = {"dock": dock, "officer": officer, "size": int(size), "sha": sha}
        files_of_dock[dock] += 1

    verified = {}  # object key -> what the ledger verified
    retries = collections.Counter()  # what the volume server's death cost: upload.retry, file.failed events
    for n in range(1, args.docks + 1):
        dock = f"dock-{n:02d}"
        folder = os.path.join(args.work, dock)
        states = json.load(open(os.path.join(folder, "status.json")))["states"]
        expected = files_of_dock[dock]
        if set(states) != {"verified"} or states["verified"]["count"] != expected:
            summary = ", ".join(f"{state} {value['count']}" for state, value in sorted(states.items()))
            fail(f"{dock}: files per state are {summary or 'none'}; expected verified {expected} (see {folder}/log.json)")
        events = json.load(open(os.path.join(folder, "log.json")))
        per_file = collections.defaultdict(list)
        for event in events:
            if event["kind"] in ("upload.retry", "file.failed"):
                retries[event["kind"]] += 1
            if event["kind"] == "upload.verified":
                per_file[event["fileID"]].append(event)
        if len(per_file) != expected:
            fail(f"{dock}: {len(per_file)} files have an upload.verified event; the camera has {expected}")
        for file_id, found in sorted(per_file.items()):
            if len(found) != 1:
                fail(f"{dock}: file #{file_id} was verified {len(found)} times (events {[e['id'] for e in found]})")
            event = found[0]
            match = VERIFIED.match(event["message"])
            if not match:
                fail(f"{dock}: file #{file_id}'s upload.verified event does not name a key, version, size and sha256: {event['message']!r}")
            key = match["key"]
            parts = key.split("/")
            serial, name, user = event.get("serial"), parts[-1], parts[1] if len(parts) > 2 else ""
            source = camera.get((serial, name))
            if source is None or source["dock"] != dock:
                fail(f"{dock}: file #{file_id} was verified as {key}, which is no file of {dock}'s camera {serial}")
            if user != source["officer"] or event.get("user") != source["officer"]:
                fail(f"{dock}: file #{file_id} ({name}) is attributed to {event.get('user')} under {key}; camera {serial} is registered to {source['officer']}")
            if int(match["size"]) != source["size"] or match["sha"] != source["sha"]:
                fail(f"{dock}: file #{file_id} ({name}) was verified with size {match['size']} sha256 {match['sha']}; the camera file has {source['size']} {source['sha']}")
            if key in verified:
                fail(f"{key} was verified by {verified[key]['dock']} and by {dock}")
            verified[key] = {"dock": dock, "version": match["version"], **source}
    if len(verified) != len(camera):
        fail(f"the ledgers verified {len(verified)} files; the cameras hold {len(camera)}")

    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                      aws_access_key_id=os.environ["S3_ACCESS_KEY"], aws_secret_access_key=os.environ["S3_SECRET_KEY"],
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
    versions = collections.defaultdict(list)
    checkpoints = collections.Counter()
    registry = collections.Counter()
    statuses = collections.Counter()
    alert_claims = collections.Counter()
    # The agent's checksum probe writes scratch objects there and deletes them by version.
    probes = f"{args.prefix}/.uploader-checksum-probe/"
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=args.bucket, Prefix=args.prefix + "/"):
        for marker in page.get("DeleteMarkers", []):
            if marker["Key"].startswith(probes):
                continue
            fail(f"the bucket holds a delete marker for {marker['Key']}")
        for version in page.get("Versions", []):
            key = version["Key"]
            if key.startswith(probes):
                continue
            # The fleet's registry: each commit one object, written once, numbered 1 to the head.
            if key.startswith(f"{args.prefix}/_fleet/registry/"):
                registry[key] += 1
                continue
            if key.startswith(f"{args.prefix}/_fleet/join/"):
                continue
            # The docks' statuses (rewritten: one version each per write) and the fleet's alert claims.
            if key.startswith(f"{args.prefix}/_fleet/docks/"):
                statuses[key.split("/")[-1]] += 1
                continue
            if key.startswith(f"{args.prefix}/_fleet/alerts/"):
                alert_claims[key.split("/")[-1]] += 1
                continue
            custody = re.match(re.escape(args.prefix) + r"/_custody/([^/]+)/", key)
            if custody:
                checkpoints[custody.group(1)] += 1
                continue
            versions[key].append(version)
    for key, found in sorted(versions.items()):
        if key not in verified:
            fail(f"the bucket holds {key}, which no dock's ledger verified")
        if len(found) != 1:
            fail(f"the bucket holds {len(found)} versions of {key} (one file, one object expected): {[v['VersionId'] for v in found]}")
        if found[0]["VersionId"] != verified[key]["version"]:
            fail(f"{key}: the bucket's version is {found[0]['VersionId']}; {verified[key]['dock']}'s ledger verified {verified[key]['version']}")
    missing = sorted(set(verified) - set(versions))
    if missing:
        fail(f"{len(missing)} verified files have no object in the bucket, the first: {missing[0]}")
    if args.registry_head is not None:
        expected = {f"{args.prefix}/_fleet/registry/{n:020d}.json" for n in range(1, args.registry_head + 1)}
        if set(registry) != expected:
            fail(f"the bucket's registry commits are not exactly 1 to {args.registry_head}: "
                 f"missing {sorted(expected - set(registry))[:3]}, extra {sorted(set(registry) - expected)[:3]}")
        twice = [key for key, count in registry.items() if count != 1]
        if twice:
            fail(f"registry commit {twice[0]} has {registry[twice[0]]} versions: a commit was written twice")
    if args.fleet_status:
        check_fleet_status(args, statuses, alert_claims)
    docks_without_checkpoints = [f"dock-{n:02d}" for n in range(1, args.docks + 1) if checkpoints[f"dock-{n:02d}"] < 2]
    if docks_without_checkpoints:
        fail(f"no custody key and checkpoint in the bucket for {', '.join(docks_without_checkpoints)}")

    def download(key):
        expected = verified[key]
        answer = s3.get_object(Bucket=args.bucket, Key=key, VersionId=expected["version"])
        digest, size = hashlib.sha256(), 0
        for chunk in answer["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return key, size, digest.hexdigest(), answer["Metadata"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for key, size, sha, metadata in pool.map(download, sorted(verified)):
            expected = verified[key]
            if size != expected["size"] or sha != expected["sha"]:
                fail(f"{key}: the bucket holds {size} bytes with sha256 {sha}; the camera file has {expected['size']} bytes, {expected['sha']}")
            if metadata.get("sha256") != expected["sha"] or metadata.get("user") != expected["officer"] or metadata.get("host") != expected["dock"]:
                fail(f"{key}: its metadata says sha256 {metadata.get('sha256')}, user {metadata.get('user')}, host {metadata.get('host')}")

    uploads = s3.list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
    total = sum(v["size"] for v in verified.values())
    print(f"fleet-test: {len(verified)} files of {args.docks} docks verified exactly once each, "
          f"{len(versions)} objects (one version each, {total / 1048576:.0f} MiB, downloaded and hashed), "
          f"custody checkpoints from every dock ({sum(checkpoints.values())} objects); "
          f"{len(uploads)} unfinished multipart uploads left in the bucket; "
          f"the ledgers logged {retries['upload.retry']} retried requests and {retries['file.failed']} files failed for a run")


def check_fleet_status(args, statuses, alert_claims):
    """Every dock wrote its status; `fleet status` lists all of them, each
    signed by its member key, with only the silent dock silent; its alert was
    claimed exactly once for the fleet."""
    docks = [f"dock-{n:02d}" for n in range(1, args.docks + 1)]
    missing = [d for d in docks if statuses[f"{d}.json"] == 0 or statuses[f"{d}.waiting.json"] == 0]
    if missing:
        fail(f"no status (or waiting list) in the store for {', '.join(missing)}")
    report = json.load(open(args.fleet_status))
    seen = {entry["dock"]: entry for entry in report["docks"]}
    if sorted(seen) != docks:
        fail(f"fleet status lists {len(seen)} docks ({', '.join(sorted(seen)[:3])}...), not the {args.docks} of the fleet")
    untrusted = [f"{d} {e['verdict']}" for d, e in sorted(seen.items()) if e["verdict"] != "trusted"]
    if untrusted:
        fail(f"fleet status does not trust {', '.join(untrusted)}")
    silent = sorted(d for d, e in seen.items() if e.get("silentSince"))
    if silent != [args.silent_dock]:
        fail(f"fleet status shows {silent or 'no dock'} silent; only {args.silent_dock} was stopped")
    verified = sum(e["status"]["files"].get("verified", {}).get("count", 0) for e in seen.values())
    claims = [k for k in alert_claims if k.startswith(f"silent-{args.silent_dock}-")]
    if len(claims) != 1 or alert_claims[claims[0]] != 1:
        fail(f"the silent dock's alert was claimed {len(claims)} times ({claims}): once for the fleet expected")
    print(f"fleet-test: fleet status lists {len(seen)} docks, all signed by their member keys, {verified} files verified in all; "
          f"{args.silent_dock} silent since {seen[args.silent_dock]['silentSince']}, its alert claimed once ({claims[0]})")


if __name__ == "__main__":
    main()
