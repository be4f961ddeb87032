#!/usr/bin/env bash
# The default model's quality on the val splits of ../shared/data, beside GrabCut: the
# figures of the README's quality section and of the model card (issue 16).
#   bash benchmarks/run_default_model.sh                # segrefiner-lite + GrabCut -> results/v3_<set>.*
#   MODEL=segrefiner-lite-v2 PREFIX=v2r METHODS="identity segrefiner" OUTDIR=/tmp bash benchmarks/run_default_model.sh
# The same seeded objects and coarse masks as the v2 tables (results/v2_<set>.*): all 37
# DAVIS objects, 40 of 100 CCP photos, 100 dsb2018 nuclei, 60 isbi2012 cells.
set -euo pipefail
D=${DATA:-../shared/data}
MODEL=${MODEL:-segrefiner-lite}
PREFIX=${PREFIX:-v3}
METHODS=${METHODS:-identity segrefiner grabcut}
for spec in "davis 37" "ccp 40" "dsb2018 100" "isbi2012 60"; do
  set -- $spec
  python -m napari_segrefiner.cli benchmark --data "$D/$1" --max-items "$2" --model "$MODEL" \
    --kinds cascadepsp-0.8 lowres-jitter lowres-28 nearperfect --methods $METHODS \
    --peers-kinds cascadepsp-0.8 lowres-jitter --threads 1 --device cpu --per-item --no-progress \
    --out "${OUTDIR:-benchmarks/results}/${PREFIX}_$1"
done
