#!/usr/bin/env bash
# Reproduces the README's quality tables (val splits of ../shared/data).
# Peers and SegRefiner run separately so the slow classical peers can use idle cores;
# the object subsets and coarse masks are seeded, so every run sees the same items.
set -euo pipefail
D=${DATA:-../shared/data}
B="python -m napari_segrefiner.cli benchmark --threads 1 --no-progress"
run() { # set max_items tag args...
  local set=$1 n=$2 tag=$3; shift 3
  $B --data "$D/$set" --max-items "$n" --out "benchmarks/results/quality_${set}_${tag}" "$@"
}
what=${1:-all}
for spec in ${SETS:-"davis 37" "ccp 20" "dsb2018 100" "isbi2012 60"}; do
  set -- $spec
  if [ "$what" = peers ] || [ "$what" = all ]; then
    run "$1" "$2" peers --methods identity grabcut random_walker densecrf --kinds cascadepsp-0.8 lowres-28
  fi
  if [ "$what" = model ] || [ "$what" = all ]; then
    run "$1" "$2" model --methods identity segrefiner
  fi
done
