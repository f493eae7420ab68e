#!/usr/bin/env bash
# Sim-to-real experiment on cube_push (docs/architecture.md 6, README "Measured"): three training
# recipes, each collect -> BC -> RLDT for SEEDS, every seed's BC and RLDT policy exported, then
# all of them evaluated under each perturbation (rldt-train robustness: EPISODES per model and
# row, the same episodes everywhere).
#
#   nominal     config/train/cube_push.yaml                      (the bare simulator)
#   randomized  config/train/cube_push_robust.yaml               (filter + latency + randomization)
#   deploy      cube_push.yaml + env.max_delta_per_tick=0.1 env.action_delay_ticks=[0,2]
#               (filter + latency only: the ablation)
#
# Order: every BC first (cheap) and the BC report, then RLDT seed by seed and recipe by recipe,
# so a run cut short still compares the recipes on the seeds it finished. Long (about 10 min of
# one free core per RLDT run, ~20 min of evaluation): run it unattended and niced, e.g.
# `nohup nice -n 19 bash scripts/sim2real_experiment.sh &`. Started again, it continues where it
# stopped (pretrain and fine-tuning resume, finished stages are skipped, exports are redone).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/sim2real}
SEEDS=${SEEDS:-0 1 2}
EPISODES=${EPISODES:-100}
TRAIN=${TRAIN:-.venv/bin/rldt-train}
read -r -a seeds <<< "$SEEDS"
read -r -a names <<< "${NAMES:-nominal randomized deploy}"

declare -A recipe=(
  [nominal]="--config config/train/cube_push.yaml"
  [randomized]="--config config/train/cube_push_robust.yaml"
  [deploy]="--config config/train/cube_push.yaml env.max_delta_per_tick=0.1 env.action_delay_ticks=[0,2]"
)

export_model() {  # name stage seed checkpoint
  $TRAIN export --checkpoint "$4" --task cube_push --out "$OUT/models/$1_$2_s$3" > /dev/null
}

report() {  # stage: every recipe's exported models of that stage, grouped by recipe
  local models=()
  for name in "${names[@]}"; do
    for s in "${seeds[@]}"; do
      if [[ -f "$OUT/models/${name}_$1_s$s/policy.yaml" ]]; then
        models+=(--model "$name=$OUT/models/${name}_$1_s$s")
      fi
    done
  done
  # Every perturbation on top of the robot's command filter (config/policy.yaml) ...
  $TRAIN robustness "${models[@]}" --episodes "$EPISODES" --out "$OUT/robustness_$1" \
    --title "cube_push ${1^^}: nominal vs randomized vs deployment-only training"
  # ... and latency alone in the bare simulator (no filter), where nominal training was done.
  $TRAIN robustness "${models[@]}" --episodes "$EPISODES" --filter 0 \
    --perturb action_delay=1,2 --out "$OUT/delay_nofilter_$1" \
    --title "cube_push ${1^^}: action delay without the command filter"
}

# 1. demonstrations and BC, every recipe and seed (the layout rldt-train benchmark uses).
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  dataset=$($TRAIN collect ${recipe[$name]} | tail -n 1 |
            .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["path"])')
  for s in "${seeds[@]}"; do
    run="$OUT/$name/seed_$s/pretrain"
    mkdir -p "$run"
    if [[ ! -f "$run/policy_bc.pt" ]]; then
      # shellcheck disable=SC2086
      $TRAIN pretrain --dataset "$dataset" --run-dir "$run" --resume ${recipe[$name]} \
        "seed=$s" >> "$OUT/$name/seed_$s/log.txt" 2>&1
    fi
    export_model "$name" bc "$s" "$run/policy_bc.pt"
  done
done
report bc

# 2. RLDT seed by seed (rldt-train benchmark finds the BC policies done and fine-tunes them).
for s in "${seeds[@]}"; do
  for name in "${names[@]}"; do
    # shellcheck disable=SC2086
    $TRAIN benchmark ${recipe[$name]} --seeds "$s" --jobs 1 --out "$OUT/$name" > /dev/null
    export_model "$name" rldt "$s" "$OUT/$name/seed_$s/finetune/policy_finetuned.pt"
  done
done
for name in "${names[@]}"; do   # the benchmark table over all seeds (nothing left to train)
  # shellcheck disable=SC2086
  $TRAIN benchmark ${recipe[$name]} --seeds "${seeds[@]}" --jobs 1 --out "$OUT/$name" > /dev/null
done
report rldt
echo "sim2real: reports in $OUT/robustness_{bc,rldt} and $OUT/delay_nofilter_{bc,rldt}"
