# The ledger-scale benchmark, run by `scripts/bench ledger [FILES]`.
# Builds the ledger of a long-serving docking PC through the project's own
# write path (`uploader-ledger-simulation`, built beside `uploader` by
# scripts/bench: the real checked transitions and hash-chained events, many
# files per transaction), then times each command
# an admin or the daemon runs on it: wall milliseconds and peak RSS. Ingest
# and upload of 10 new files are compared with the same on an empty ledger.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/common.sh
uploader=${UPLOADER_BIN:?}
files=${1:-1000000}
work="${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/uploader-ledger-bench.XXXXXX")}"
trap 'stop_seaweedfs; [ -n "${BENCH_DIR:-}" ] || rm -rf "$work"' EXIT
rm -rf "$work/store"  # a store left by an earlier run (BENCH_DIR) would keep its old identities
start_seaweedfs "$work/store"
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
curl -s -f --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" -H "x-amz-content-sha256: $empty" \
    -X PUT "$S3_ENDPOINT/ledger-bench" >/dev/null

site() {  # $1 = folder
    write_site "$1" ledger-bench "$(basename "$1")" <<'TOML'
[ingest]
settle_seconds = 0
spool_reserve = "0MiB"
[monitoring]
metrics_textfile = "metrics.prom"
TOML
}

# Runs a command under GNU time (best of 3 for wall time, highest RSS); prints "ms rss_kib".
measure() {
    local best="" rss=0
    for _ in 1 2 3; do
        /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.txt" 2>&1 || { echo "FAILED: $*" >&2; tail -5 "$work/out.txt" >&2; return 1; }
        read -r wall kib < "$work/time.txt"
        ms=$(awk -v w="$wall" 'BEGIN{printf "%d", w * 1000}')
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
        [ "$kib" -gt "$rss" ] && rss=$kib
    done
    echo "$best $rss"
}
once() {  # like measure, one run (commands that change the ledger)
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/out.txt" 2>&1 || { echo "FAILED: $*" >&2; tail -5 "$work/out.txt" >&2; return 1; }
    read -r wall kib < "$work/time.txt"
    echo "$(awk -v w="$wall" 'BEGIN{printf "%d", w * 1000}') $kib"
}

big="$work/big"; small="$work/empty"
newserial="NEW-$$"  # new every run, so a re-run on the same ledger copies again
site "$big"
if [ -f "$big/state/ledger.sqlite" ]; then
    echo "reusing the ledger in $big (BENCH_DIR)" >&2
else
    echo "building a ledger of $files files (200 cameras, 10 events per file)…" >&2
    start=$SECONDS
    "$(dirname "$uploader")/uploader-ledger-simulation" --config "$big/uploader.toml" --devices 200 --files "$files" --events-per-file 10 >&2
    echo "built in $((SECONDS - start)) s: $(du -h "$big/state/ledger.sqlite" | cut -f1)" >&2
fi
# A fresh small site every run, so its numbers are those of an empty ledger.
rm -rf "$small" "$work/warm-up" "$work/camera"
site "$small"

printf '%-28s %10s %12s\n' command "wall ms" "peak RSS MiB"
row() { printf '%-28s %10s %12s\n' "$1" "$2" "$(awk -v k="$3" 'BEGIN{printf "%.1f", k/1024}')"; }
maxrss=0
track() { [ "$1" -gt "$maxrss" ] && maxrss=$1; true; }
read -r status_ms kib < <(measure "$uploader" status --config "$big/uploader.toml"); row status "$status_ms" "$kib"; track "$kib"
read -r json_ms kib < <(measure "$uploader" status --json --config "$big/uploader.toml"); row "status --json" "$json_ms" "$kib"; track "$kib"
read -r log_ms kib < <(measure "$uploader" log --since 1h --config "$big/uploader.toml"); row "log --since 1h" "$log_ms" "$kib"; track "$kib"
read -r dev_ms kib < <(measure "$uploader" log --device SIM-0007 --limit 50 --config "$big/uploader.toml"); row "log --device --limit 50" "$dev_ms" "$kib"; track "$kib"
read -r metrics_ms kib < <(measure "$uploader" metrics --config "$big/uploader.toml"); row metrics "$metrics_ms" "$kib"; track "$kib"
read -r alerts_ms kib < <(measure "$uploader" alerts --dry-run --config "$big/uploader.toml"); row "alerts --dry-run" "$alerts_ms" "$kib"; track "$kib"
read -r purge_ms kib < <(measure "$uploader" purge --dry-run --config "$big/uploader.toml"); row "purge --dry-run" "$purge_ms" "$kib"; track "$kib"
read -r house_ms kib < <(measure "$uploader" housekeeping --config "$big/uploader.toml"); row "housekeeping (one pass)" "$house_ms" "$kib"; track "$kib"

# 10 new files on the big ledger and on an empty one, three rounds (a new
# camera serial each, so each round copies and uploads for real), best of each.
# A warm-up upload first: SeaweedFS grows a bucket's volumes on its first
# writes, which is not ours to time.
"$uploader" simulate-camera "$work/camera" --files 10 --size 1MiB --seed 5 >/dev/null
site "$work/warm-up"
"$uploader" device add "$newserial" --user officer-new --config "$work/warm-up/uploader.toml" >/dev/null
"$uploader" ingest "$work/camera" --serial "$newserial" --config "$work/warm-up/uploader.toml" >/dev/null 2>&1
"$uploader" upload --now --config "$work/warm-up/uploader.toml" >/dev/null 2>&1
best() { [ -z "$1" ] || [ "$2" -lt "$1" ] && echo "$2" || echo "$1"; }
ingest_big=""; ingest_small=""; upload_big=""; upload_small=""
ib_k=0; is_k=0; ub_k=0; us_k=0
most() { [ "$2" -gt "$1" ] && echo "$2" || echo "$1"; }
for round in 1 2 3; do
    serial="$newserial-$round"
    for s in "$big" "$small"; do "$uploader" device add "$serial" --user officer-new --config "$s/uploader.toml" >/dev/null; done
    read -r ms kib < <(once "$uploader" ingest "$work/camera" --serial "$serial" --config "$big/uploader.toml"); ingest_big=$(best "$ingest_big" "$ms"); ib_k=$(most "$ib_k" "$kib"); track "$kib"
    read -r ms kib < <(once "$uploader" ingest "$work/camera" --serial "$serial" --config "$small/uploader.toml"); ingest_small=$(best "$ingest_small" "$ms"); is_k=$(most "$is_k" "$kib")
    read -r ms kib < <(once "$uploader" upload --now --device "$serial" --config "$small/uploader.toml"); upload_small=$(best "$upload_small" "$ms"); us_k=$(most "$us_k" "$kib")
    read -r ms kib < <(once "$uploader" upload --now --device "$serial" --config "$big/uploader.toml"); upload_big=$(best "$upload_big" "$ms"); ub_k=$(most "$ub_k" "$kib"); track "$kib"
done
row "ingest 10 (big ledger)" "$ingest_big" "$ib_k"
row "ingest 10 (empty ledger)" "$ingest_small" "$is_k"
row "upload 10 (big ledger)" "$upload_big" "$ub_k"
row "upload 10 (empty ledger)" "$upload_small" "$us_k"
awk -v a="$ingest_big" -v b="$ingest_small" -v c="$upload_big" -v d="$upload_small" \
    'BEGIN{printf "ingest big/empty %.2fx, upload big/empty %.2fx\n", a/b, c/d}'
echo "ledger-scale: status $status_ms ms, log-since $log_ms ms, metrics $metrics_ms ms, housekeeping $house_ms ms, max RSS $((maxrss / 1024)) MiB"
