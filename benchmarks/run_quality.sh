#!/usr/bin/env bash
# Reproduces the README's quality tables (val splits of ../shared/data), then
#   python benchmarks/summarize.py > benchmarks/results/quality_summary.md
# Peers and SegRefiner run separately (the classical peers can use idle cores); object
# subsets and coarse masks are seeded, so every run sees the same objects and masks.
# Usage: bash benchmarks/run_quality.sh [all|peers|model]
set -euo pipefail
D=${DATA:-../shared/data}
B="python -m napari_segrefiner.cli benchmark --threads 1 --no-progress --device cpu"
what=${1:-all}
for spec in "davis 37" "ccp 20" "dsb2018 100" "isbi2012 60"; do
  set -- $spec
  if [ "$what" = peers ] || [ "$what" = all ]; then
    peers="grabcut random_walker densecrf"
    # the random walker needs ~30 s per whole CCP photo here: GrabCut and DenseCRF only
    [ "$1" = ccp ] && peers="grabcut densecrf"
    $B --data "$D/$1" --max-items "$2" --out "benchmarks/results/quality_$1_peers" \
       --methods identity $peers --kinds cascadepsp-0.8 lowres-28
  fi
  if [ "$what" = model ] || [ "$what" = all ]; then
    $B --data "$D/$1" --max-items "$2" --out "benchmarks/results/quality_$1_model" --methods identity segrefiner
  fi
done
