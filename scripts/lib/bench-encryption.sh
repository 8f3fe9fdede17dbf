#!/usr/bin/env bash
# `scripts/bench encryption [LARGE_SIZE] [ROUNDS]`: what sealing the spool
# (AES-256-GCM, [spool] encryption) costs. The same camera data (4 files of
# LARGE_SIZE, default 512MiB, and 200 files of 5MiB) is ingested and uploaded
# to a local SeaweedFS with encryption off and on, alternately, ROUNDS times
# (default 2); the table shows the median wall and CPU time of each and the
# cost of sealing in wall time. The target: under 15%.
set -euo pipefail
source scripts/lib/common.sh
large=${1:-512MiB}
rounds=${2:-2}
u=${UPLOADER_BIN:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/uploader-bench-encryption.XXXXXX")
trap 'stop_seaweedfs; rm -rf "$work"' EXIT
start_seaweedfs "$work/store"
"$u" simulate-camera "$work/cam/large" --files 4 --size "$large" --seed 1 >/dev/null
"$u" simulate-camera "$work/cam/small" --files 200 --size 5MiB --seed 2 >/dev/null
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
results="$work/results.txt"
: > "$results"
measure() {  # label command...
    local label=$1; shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$work/out" 2>&1 || { echo "FAILED: $label" >&2; tail -5 "$work/out" >&2; exit 1; }
    read -r wall user sys rss < "$work/time"
    echo "$label $wall $(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}') $rss" >> "$results"
    echo "  $label: ${wall}s" >&2
}
for round in $(seq 1 "$rounds"); do
    for mode in clear sealed; do
        site="$work/site-$mode-$round"
        write_site "$site" bench "enc-$mode-$round" <<TOML
[upload]
part_size = "64MiB"
concurrency = 4
[ingest]
settle_seconds = 0
spool_reserve = "0MiB"
[spool]
encryption = $([ "$mode" = sealed ] && echo true || echo false)
TOML
        export UPLOADER_CONFIG="$site/uploader.toml"
        [ "$round$mode" = 1clear ] && "$u" store create-bucket >/dev/null
        "$u" device add BENCH --user officer-1 >/dev/null
        drop_caches
        measure "ingest:$mode" "$u" ingest "$work/cam" --serial BENCH
        measure "upload:$mode" "$u" upload --now
        verified=$("$u" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["states"].get("verified",{}).get("count",0))')
        [ "$verified" = 204 ] || { echo "FAILED: $mode round $round verified $verified of 204 files" >&2; exit 1; }
        rm -rf "$site/spool"
    done
done
python3 - "$results" "$large" "$rounds" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, wall, cpu, rss = line.split()
    rows.setdefault(label, []).append((float(wall), float(cpu), int(rss)))
print(f"\nspool encryption cost: 4 x {sys.argv[2]} + 200 x 5MiB, median of {sys.argv[3]} rounds each")
print(f"  {'step':<8}{'clear wall s':>14}{'sealed wall s':>15}{'clear cpu s':>13}{'sealed cpu s':>14}{'sealed RSS MiB':>16}{'cost (wall)':>13}")
for step in ["ingest", "upload"]:
    clear, sealed = rows[f"{step}:clear"], rows[f"{step}:sealed"]
    cw, sw = statistics.median(r[0] for r in clear), statistics.median(r[0] for r in sealed)
    cc, sc = statistics.median(r[1] for r in clear), statistics.median(r[1] for r in sealed)
    rss = max(r[2] for r in sealed) / 1024
    cost = (sw - cw) / cw * 100
    print(f"  {step:<8}{cw:>14.2f}{sw:>15.2f}{cc:>13.2f}{sc:>14.2f}{rss:>16.1f}{cost:>+12.1f}%  ({'met' if cost < 15 else 'MISSED'}: target < 15%)")
PY
