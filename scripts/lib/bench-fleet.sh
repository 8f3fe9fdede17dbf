#!/usr/bin/env bash
# `scripts/bench fleet [ROUNDS]`: a fleet against the SeaweedFS cluster of
# scripts/fleet-test (scripts/lib/seaweed-cluster: 1 master, 3 volume servers
# with replication 001, 1 filer, 1 S3 gateway). The aggregate upload rate of
# 20 docks (20 `uploader upload --now` at once, each its own site, spool and
# ledger, into one Object Lock bucket) against the same bytes sent by 20
# `aws s3 cp --recursive` at once to the same bucket (target: at least 0.95x).
# ROUNDS (default 2) alternate which goes first; the rate is all bytes over all
# seconds of each. Ingest is not timed. Same transfer settings on both sides:
# 8 MiB parts above 8 MiB, 4 transfers per process.
#
# The registry's figures (commits per second with 20 writers, seconds until a
# commit is applied at all 20 docks, a new dock's first sync of 2,000 cameras
# and 100,000 commits) come with `uploader fleet` (issue 17 items 1-3): until
# then registry_bench prints them as n/a, and it is the one function to fill.
set -euo pipefail
source scripts/lib/common.sh
rounds=${1:-2}
docks=${BENCH_FLEET_DOCKS:-20}
u=${UPLOADER_BIN:?}
bucket=evidence
camera_batches=("1 48MiB" "3 12MiB" "6 3MiB" "8 512KiB")   # as scripts/fleet-test: 106 MiB a camera

work=$(mktemp -d "${TMPDIR:-/tmp}/uploader-bench-fleet.XXXXXX")
cluster="$work/cluster"
trap 'scripts/lib/seaweed-cluster stop "$cluster" || true; rm -rf "$work"' EXIT
# (A failed start must stop the script: eval of a failed command substitution would not.)
cluster_env="$(scripts/lib/seaweed-cluster start "$cluster" --bucket "$bucket")"
eval "$cluster_env"

echo "writing $docks cameras" >&2
for n in $(seq 1 "$docks"); do
    (batch=0
     for spec in "${camera_batches[@]}"; do
         read -r count size <<<"$spec"
         batch=$((batch + 1))
         "$u" simulate-camera "$work/generate-$n-$batch" --files "$count" --size "$size" --seed $((n * 1000 + batch * 100)) \
             --start "2026-11-2${batch}T$(printf '%02d' $((n % 24))):00:00Z" >/dev/null
         mkdir -p "$work/camera-$n/DCIM/100BWC"
         for file in "$work/generate-$n-$batch"/DCIM/100BWC/*; do
             mv "$file" "$work/camera-$n/DCIM/100BWC/B${batch}_$(basename "$file")"
         done
         rm -rf "$work/generate-$n-$batch"
     done) &
done
wait
fleet_bytes=$(du -sb "$work"/camera-* | awk '{s += $1} END {printf "%.0f", s}')

# One round's docks: a site each (own spool, state, key), camera registered and ingested.
prepare_docks() {
    local round=$1 n dir
    for n in $(seq 1 "$docks"); do
        dir="$work/round-$round/dock-$n"
        write_site "$dir" "$bucket" "bench-$round" <<TOML
[agent]
host_name = "bench-$round-dock-$n"
[upload]
part_size = "8MiB"
concurrency = 4
[ingest]
settle_seconds = 0
spool_reserve = "0MiB"
[spool]
high_watermark_percent = 99.0
low_watermark_percent = 98.0
TOML
        "$u" device add "BWC-$n" --user "officer-$n" --config "$dir/uploader.toml" >/dev/null
        "$u" ingest "$work/camera-$n" --serial "BWC-$n" --config "$dir/uploader.toml" >/dev/null &
    done
    wait
}

export AWS_CONFIG_FILE="$work/aws-config" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1
printf '[default]\ns3 =\n    max_concurrent_requests = 4\n    multipart_chunksize = 8MB\n    multipart_threshold = 8MB\n' > "$AWS_CONFIG_FILE"

# Runs one command per dock at once; prints the wall seconds. $1 = what, $2 = round.
fleet_seconds() {
    local what=$1 round=$2 n start end failed=0 pids=()
    start=$(date +%s.%N)
    for n in $(seq 1 "$docks"); do
        if [ "$what" = uploader ]; then
            "$u" upload --now --config "$work/round-$round/dock-$n/uploader.toml" >"$work/$what-$round-$n.log" 2>&1 &
        else
            aws s3 cp --recursive --only-show-errors --endpoint-url "$S3_ENDPOINT" "$work/camera-$n" \
                "s3://$bucket/awscli-$round/dock-$n/" >"$work/$what-$round-$n.log" 2>&1 &
        fi
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || failed=$((failed + 1)); done
    end=$(date +%s.%N)
    [ $failed -eq 0 ] || { echo "bench-fleet: $failed of $docks $what processes failed in round $round; e.g. $(tail -n 1 "$work/$what-$round-1.log")" >&2; exit 1; }
    awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}'
}

uploader_total=0 awscli_total=0
for round in $(seq 1 "$rounds"); do
    prepare_docks "$round"
    if [ $((round % 2)) = 1 ]; then order="uploader awscli"; else order="awscli uploader"; fi
    for what in $order; do
        seconds=$(fleet_seconds "$what" "$round")
        echo "  round $round: $docks $what processes sent $((fleet_bytes / 1048576)) MiB in $seconds s" >&2
        if [ "$what" = uploader ]; then uploader_total=$(awk -v a="$uploader_total" -v b="$seconds" 'BEGIN {print a + b}')
        else awscli_total=$(awk -v a="$awscli_total" -v b="$seconds" 'BEGIN {print a + b}'); fi
    done
    # Every file verified at every dock, or the rate means nothing.
    for n in $(seq 1 "$docks"); do
        "$u" status --json --config "$work/round-$round/dock-$n/uploader.toml" |
            python3 -c 'import json, sys; s = json.load(sys.stdin)["states"]; sys.exit(0 if set(s) == {"verified"} else "bench-fleet: a dock left files unverified: " + str(s))'
    done
    rm -rf "$work/round-$round"/dock-*/spool
done

# The registry's figures: filled in once `uploader fleet` commits to the store.
# Prints "commits C/s, applied-at-all A s, first-sync M ms N MiB".
registry_bench() {
    echo "commits n/a, applied-at-all n/a, first-sync n/a"
}

python3 - "$fleet_bytes" "$rounds" "$uploader_total" "$awscli_total" "$docks" "$(registry_bench)" <<'PY'
import sys
size, rounds, uploader, awscli, docks, registry = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
mib = size * rounds / 1048576
ours, theirs = mib / uploader, mib / awscli
ratio = ours / theirs
print(f"\nfleet upload: {docks} processes at once, {size / 1048576:.0f} MiB a round, {rounds} rounds, SeaweedFS cluster (3 volume servers, replication 001)")
print(f"  {'tool':<12}{'seconds':>10}{'MiB/s':>10}")
print(f"  {'uploader':<12}{uploader:>10.2f}{ours:>10.1f}")
print(f"  {'awscli':<12}{awscli:>10.2f}{theirs:>10.1f}")
print(f"  uploader/awscli {ratio:.2f}x (target at least 0.95x: {'met' if ratio >= 0.95 else 'MISSED'})")
print(f"fleet-bench: aggregate {ratio:.2f}x awscli, {registry}")
PY
