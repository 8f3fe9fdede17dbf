#!/usr/bin/env bash
# `scripts/bench export [SIZE]`: the memory of an evidence-bag export of one
# SIZE camera file (default 2GiB) from a local SeaweedFS, and of checking the
# bag offline, measured by GNU time (peak RSS). The target: under 64 MiB.
set -euo pipefail
source scripts/lib/common.sh
size=${1:-2GiB}
u=${UPLOADER_BIN:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/uploader-bench-export.XXXXXX")
trap 'stop_seaweedfs; rm -rf "$work"' EXIT
start_seaweedfs "$work/store"
write_site "$work/site" evidence pd <<TOML
[upload]
part_size = "64MiB"
TOML
export UPLOADER_CONFIG="$work/site/uploader.toml"
"$u" store create-bucket >/dev/null
"$u" simulate-camera "$work/cam" --files 1 --size "$size" --seed 3 >/dev/null
"$u" device add BENCH-1 --user officer-1 >/dev/null
"$u" ingest "$work/cam" --serial BENCH-1 >/dev/null
"$u" upload --now >/dev/null
measure() {  # label command...
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    read -r seconds kib < "$work/time"
    printf '%-28s %8.1f s   peak RSS %6.1f MiB   (target < 64 MiB: %s)\n' "$label" "$seconds" "$(awk -v k="$kib" 'BEGIN{print k/1024}')" \
        "$(awk -v k="$kib" 'BEGIN{print (k < 65536) ? "met" : "MISSED"}')"
}
echo "evidence bag of one $size file:"
measure "export (download + 2 hashes)" "$u" export --device BENCH-1 --output "$work/bag"
"$u" key fingerprint > "$work/trusted-keys"
measure "verify-bag (offline)" "$u" verify-bag "$work/bag" --trusted-keys "$work/trusted-keys"
