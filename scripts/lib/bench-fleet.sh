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
# The registry's figures (registry_bench, below), on the same cluster under
# their own prefixes: commits per second with 20 writers contending (each a
# dock of one fleet running `uploader device add` 10 times; every commit
# checked to have landed once), seconds until a commit made at one dock is
# applied at all 20 (each dock runs `uploader daemon`, whose fleet sync runs
# every 30 s; the worst of 3 commits), and a new dock's first sync (`uploader
# fleet join` under /usr/bin/time: wall time and peak RSS) of a registry of
# 2,000 cameras and 100,000 commits that uploader-fleet-simulation writes
# (signed commits with parallel PUTs, and the newest snapshots).
# BENCH_FLEET_REGISTRY_ONLY=1 measures only the registry; BENCH_FLEET_COMMITS
# and BENCH_FLEET_CAMERAS change the generated registry's size.
set -euo pipefail
shopt -s inherit_errexit
source scripts/lib/common.sh
rounds=${1:-2}
docks=${BENCH_FLEET_DOCKS:-20}
u=${UPLOADER_BIN:?}
# The registry's loader, built beside uploader (scripts/bench builds uploader; this is the fleet bench's own).
[ -n "${BENCH_FLEET_NO_BUILD:-}" ] || swift build -c "$(basename "$(dirname "$u")")" --product uploader-fleet-simulation >&2
bucket=evidence
camera_batches=("1 48MiB" "3 12MiB" "6 3MiB" "8 512KiB")   # as scripts/fleet-test: 106 MiB a camera

work=$(mktemp -d "${TMPDIR:-/tmp}/uploader-bench-fleet.XXXXXX")
cluster="$work/cluster"
trap 'scripts/lib/seaweed-cluster stop "$cluster" || true; rm -rf "$work"' EXIT
# (A failed start must stop the script: eval of a failed command substitution would not.)
cluster_env="$(scripts/lib/seaweed-cluster start "$cluster" --bucket "$bucket")"
eval "$cluster_env"

export AWS_CONFIG_FILE="$work/aws-config" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1
printf '[default]\ns3 =\n    max_concurrent_requests = 4\n    multipart_chunksize = 8MB\n    multipart_threshold = 8MB\n' > "$AWS_CONFIG_FILE"

# A dock of the registry bench: its own site (state, key) under prefix $2.
registry_site() {
    write_site "$1" "$bucket" "$2" <<TOML
[agent]
host_name = "$(basename "$1")"
[docking]
models = "$PWD/Config/cameras.toml"
TOML
}

# The fleet's applied commit at each dock, read from the ledgers (read-only).
registry_heads() {
    python3 - "$@" <<'PY'
import sqlite3, sys
heads = []
for path in sys.argv[1:]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        row = db.execute("SELECT applied_number FROM fleet_state WHERE id = 1").fetchone()
        heads.append(row[0] if row else 0)
        db.close()
    except sqlite3.Error:
        heads.append(0)
print(min(heads))
PY
}

# Prints "commits C/s, applied-at-all A s, first-sync M ms N MiB"; details on stderr.
registry_bench() {
    local reg="$work/registry" n fp out writes=10 start end head pids=() failed=0 ledgers=() worst=0 trial
    local commits=${BENCH_FLEET_COMMITS:-100000} cameras=${BENCH_FLEET_CAMERAS:-2000}
    echo "registry: a fleet of $docks docks" >&2
    for n in $(seq 1 "$docks"); do registry_site "$reg/dock-$n" registry; ledgers+=("$reg/dock-$n/state/ledger.sqlite"); done
    "$u" fleet init --config "$reg/dock-1/uploader.toml" >/dev/null
    for n in $(seq 2 "$docks"); do
        out=$("$u" fleet join --config "$reg/dock-$n/uploader.toml")
        fp=$(echo "$out" | awk '/uploader fleet admit/ {print $NF}')
        "$u" fleet admit "$fp" --config "$reg/dock-1/uploader.toml" >/dev/null
    done

    # Commits per second: every dock writes `writes` cameras at once, one command after another.
    start=$(date +%s.%N)
    for n in $(seq 1 "$docks"); do
        (for i in $(seq 1 "$writes"); do
             "$u" device add "REG-$n-$i" --user "officer-$n" --config "$reg/dock-$n/uploader.toml" >/dev/null || exit 1
         done) 2>"$reg/writer-$n.log" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || failed=$((failed + 1)); done
    end=$(date +%s.%N)
    [ $failed -eq 0 ] || { echo "bench-fleet: $failed registry writers failed; e.g. $(cat "$reg"/writer-*.log | head -n 2)" >&2; exit 1; }
    "$u" fleet sync --config "$reg/dock-1/uploader.toml" >/dev/null
    # Each commit landed once: the store holds commits 1..head, each number once, and
    # the applied device.add commits name each camera written exactly once.
    "$u" fleet log --json --config "$reg/dock-1/uploader.toml" >"$reg/log.json"
    aws s3api list-objects-v2 --endpoint-url "$S3_ENDPOINT" --bucket "$bucket" --prefix registry/_fleet/registry/ \
        --query 'Contents[].Key' --output text >"$reg/keys.txt"
    python3 - "$reg/log.json" "$reg/keys.txt" "$docks" "$writes" <<'PY' >&2
import json, re, sys
log, keys, docks, writes = json.load(open(sys.argv[1])), open(sys.argv[2]).read().split(), int(sys.argv[3]), int(sys.argv[4])
numbers = sorted(int(re.search(r"(\d{20})\.json$", k).group(1)) for k in keys)
head = docks + docks * writes
assert numbers == list(range(1, head + 1)), f"bench-fleet: the store holds commits {numbers[:3]}..{numbers[-3:]} ({len(numbers)}), not 1..{head} once each"
added = [c["serial"] for c in log if c.get("kind") == "device.add" and c["status"] == "applied"]
assert sorted(added) == sorted(f"REG-{n}-{i}" for n in range(1, docks + 1) for i in range(1, writes + 1)), "bench-fleet: a camera was not added exactly once"
print(f"  registry: {docks * writes} commits by {docks} writers at once, each landed once (commits 1..{head} in the store)")
PY
    local rate
    rate=$(awk -v c=$((docks * writes)) -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", c / (e - s)}')
    echo "  registry: $((docks * writes)) commits in $(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", e - s}') s: $rate commits/s" >&2

    # Applied at all: every dock runs its daemon (fleet sync every 30 s); a commit at dock 1,
    # then the seconds until every ledger holds it. Three commits; the worst counts.
    pids=()
    for n in $(seq 1 "$docks"); do
        "$u" daemon --config "$reg/dock-$n/uploader.toml" >"$reg/daemon-$n.log" 2>&1 &
        pids+=($!)
    done
    for trial in 1 2 3; do
        "$u" device add "LATE-$trial" --user officer-1 --config "$reg/dock-1/uploader.toml" >/dev/null
        start=$(date +%s.%N)
        head=$(registry_heads "$reg/dock-1/state/ledger.sqlite")
        until [ "$(registry_heads "${ledgers[@]}")" -ge "$head" ]; do
            sleep 0.2
            for n in "${pids[@]}"; do kill -0 "$n" 2>/dev/null || { echo "bench-fleet: a dock's daemon stopped; e.g. $(tail -n 3 "$reg"/daemon-*.log | head -n 5)" >&2; exit 1; }; done
        done
        end=$(date +%s.%N)
        trial=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.1f", e - s}')
        echo "  registry: commit $head applied at all $docks docks $trial s after it was written" >&2
        worst=$(awk -v a="$worst" -v b="$trial" 'BEGIN {print (b > a ? b : a)}')
    done
    for n in "${pids[@]}"; do kill -TERM "$n" 2>/dev/null || true; done
    for n in "${pids[@]}"; do wait "$n" 2>/dev/null || true; done

    # A new dock's first sync of years of registry.
    registry_site "$reg/generator" history
    start=$(date +%s)
    "$(dirname "$u")/uploader-fleet-simulation" --config "$reg/generator/uploader.toml" --commits "$commits" --cameras "$cameras" --members "$docks" >&2
    echo "  registry: $commits commits and their newest snapshots written in $(( $(date +%s) - start )) s" >&2
    registry_site "$reg/newcomer" history
    /usr/bin/time -f "%e %M" -o "$reg/first-sync.time" "$u" fleet join --config "$reg/newcomer/uploader.toml" >"$reg/first-sync.log"
    "$u" fleet log --config "$reg/newcomer/uploader.toml" | head -n 1 >&2
    local known
    known=$("$u" device list --json --config "$reg/newcomer/uploader.toml" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
    [ "$known" = "$cameras" ] || { echo "bench-fleet: the new dock knows $known cameras, not $cameras" >&2; exit 1; }
    read -r seconds kib <"$reg/first-sync.time"
    echo "  registry: a new dock's first sync (fleet join) of $cameras cameras and $commits commits: $seconds s, $((kib / 1024)) MiB peak RSS" >&2
    echo "commits $rate/s, applied-at-all $worst s, first-sync $(awk -v s="$seconds" 'BEGIN {printf "%.0f", s * 1000}') ms $((kib / 1024)) MiB"
}

if [ "${BENCH_FLEET_REGISTRY_ONLY:-0}" = 1 ]; then
    registry=$(registry_bench)
    echo "fleet-bench: registry only: $registry"
    exit 0
fi

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

registry=$(registry_bench)
python3 - "$fleet_bytes" "$rounds" "$uploader_total" "$awscli_total" "$docks" "$registry" <<'PY'
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
