#!/usr/bin/env bash
# Scan speed: `cuewarden scan` against `find <library> -type f` on a synthetic library, warm
# cache, with a check that every run gives exactly the answer the generator predicts.
#
#   cargo build --release && benches/scan.sh [RUNS]
#
# Environment:
#   CUEWARDEN_BIN   the binary to time (default: $CARGO_TARGET_DIR or target, /release/cuewarden)
#   OTHER_BIN       a second binary timed the same way (e.g. a build of an older commit)
#   SCAN_DIR        where the library is generated (default: a temp dir, removed at the end);
#                   an existing one is reused
#
# The library: 15,000 episodes (150 shows x 10 seasons x 10 episodes, one folder per season)
# and 5,000 movies (one folder each), with the .nfo/.jpg files Jellyfin and Kodi write, some
# Synology @eaDir folders (skipped by the scan), and sidecars by video number v:
# English for v % 10 in {0,1,2} (30 %, spelt .en, .eng or .en.sdh), French for v % 10 == 2
# (10 %, spelt .fr or .fr-FR). Wanted: fr, en. So 18,000 videos lack something, and
# 32,000 subtitles are missing (fr 18,000, en 14,000).
set -euo pipefail

RUNS=${1:-7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CUEWARDEN_BIN=${CUEWARDEN_BIN:-$TARGET/release/cuewarden}
EXPECTED_VIDEOS=20000
EXPECTED_MISSING=32000
EXPECTED_BY_LANGUAGE='"missing":{"fr":18000,"en":14000}'

[[ -x $CUEWARDEN_BIN ]] || { echo "no binary at $CUEWARDEN_BIN: run cargo build --release" >&2; exit 2; }

if [[ -n ${SCAN_DIR:-} ]]; then
    DIR=$SCAN_DIR
    mkdir -p "$DIR"
else
    DIR=$(mktemp -d)
    trap 'rm -rf "$DIR"' EXIT
fi
LIB=$DIR/library

generate() {
    # Prints every file of the library, one path a line; folders are made from them.
    awk 'BEGIN {
        v = 0
        for (s = 1; s <= 150; s++) {
            show = sprintf("TV/Show %03d (%d)", s, 1950 + s % 70)
            print show "/tvshow.nfo"; print show "/poster.jpg"; print show "/fanart.jpg"
            for (n = 1; n <= 10; n++) {
                print show sprintf("/season%02d-poster.jpg", n)
                season = show sprintf("/Season %02d", n)
                for (e = 1; e <= 10; e++) {
                    base = season sprintf("/Show %03d S%02dE%02d - Episode %d", s, n, e, e)
                    video(base, v++)
                    print base ".nfo"; print base "-thumb.jpg"
                }
            }
        }
        for (m = 1; m <= 5000; m++) {
            folder = sprintf("Movies/Movie %04d (%d)", m, 1930 + m % 95)
            base = folder sprintf("/Movie %04d (%d)", m, 1930 + m % 95)
            video(base, v++)
            print folder "/movie.nfo"; print folder "/poster.jpg"; print folder "/fanart.jpg"
            if (m % 20 == 0) {
                eadir = folder "/@eaDir/" substr(base, length(folder) + 2) ".mkv"
                print eadir "/SYNOVIDEO_VIDEO_SCREENSHOT.jpg"; print eadir "/decoy.mkv"
            }
        }
    }
    function video(base, v) {
        print base ".mkv"
        if (v % 10 < 3) {
            if (v % 30 == 0) print base ".eng.srt"
            else if (v % 30 == 1) print base ".en.sdh.srt"
            else print base ".en.srt"
        }
        if (v % 10 == 2) {
            if (v % 20 == 2) print base ".fr-FR.srt"; else print base ".fr.srt"
        }
    }'
}

if [[ ! -f $DIR/generated ]]; then
    echo "generating the library in $LIB…" >&2
    mkdir -p "$LIB"
    (cd "$LIB" && generate >"$DIR/files" \
        && sed 's|/[^/]*$||' "$DIR/files" | sort -u | xargs -d '\n' mkdir -p \
        && xargs -d '\n' touch <"$DIR/files")
    touch "$DIR/generated"
fi
cat >"$DIR/config.toml" <<EOF
[storage]
data_dir = "$DIR/data"
[languages]
wanted = ["fr", "en"]
[[libraries]]
path = "$LIB"
EOF

now() { date +%s%N; }

# Runs "$@" with stdout to $DIR/out; prints the wall time in ms.
timed() {
    local start end
    start=$(now)
    "$@" >"$DIR/out" 2>"$DIR/err"
    end=$(now)
    echo $(((end - start) / 1000000))
}

check_scan() {
    local bin=$1 summary missing
    summary=$(tail -n 1 "$DIR/out")
    missing=$(sed -nE 's/.* lacks? ([0-9]+) subtitle.*/\1/p' <<<"$summary")
    if [[ $summary != "$EXPECTED_VIDEOS videos scanned;"* || $missing != "$EXPECTED_MISSING" ]]; then
        echo "wrong answer from $bin: $summary (expected $EXPECTED_VIDEOS videos, $EXPECTED_MISSING missing)" >&2
        exit 1
    fi
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
minimum() { sort -n | head -n 1; }

bins=("$CUEWARDEN_BIN")
[[ -n ${OTHER_BIN:-} ]] && bins+=("$OTHER_BIN")

# Warm the cache, and check the JSON report once.
find "$LIB" -type f >/dev/null
for bin in "${bins[@]}"; do
    "$bin" scan --config "$DIR/config.toml" >/dev/null
done
if "$CUEWARDEN_BIN" scan --help | grep -q -- --json; then
    "$CUEWARDEN_BIN" scan --json --config "$DIR/config.toml" >"$DIR/json"
    grep -q "^{\"videos\":$EXPECTED_VIDEOS,$EXPECTED_BY_LANGUAGE," "$DIR/json" \
        || { echo "wrong --json report: $(head -c 200 "$DIR/json")" >&2; exit 1; }
fi

files=$(find "$LIB" -type f | wc -l)
dirs=$(find "$LIB" -type d | wc -l)
echo "library: $files files in $dirs folders, $EXPECTED_VIDEOS videos; $RUNS runs each, warm cache"

declare -A times
for ((run = 1; run <= RUNS; run++)); do
    times[find]+="$(timed find "$LIB" -type f) "
    for bin in "${bins[@]}"; do
        times[$bin]+="$(timed "$bin" scan --config "$DIR/config.toml") "
        check_scan "$bin"
    done
done

find_median=$(tr ' ' '\n' <<<"${times[find]}" | grep . | median)
printf '%-60s median %5d ms  min %5d ms\n' "find -type f" "$find_median" \
    "$(tr ' ' '\n' <<<"${times[find]}" | grep . | minimum)"
for bin in "${bins[@]}"; do
    m=$(tr ' ' '\n' <<<"${times[$bin]}" | grep . | median)
    printf '%-60s median %5d ms  min %5d ms  = %s x find (answer right every run)\n' \
        "$bin scan" "$m" "$(tr ' ' '\n' <<<"${times[$bin]}" | grep . | minimum)" \
        "$(awk -v a="$m" -v b="$find_median" 'BEGIN { printf "%.2f", a / (b ? b : 1) }')"
done
