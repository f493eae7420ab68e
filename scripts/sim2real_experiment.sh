#!/usr/bin/env bash
# Sim-to-real experiment on cube_push (docs/architecture.md 6, README "Measured"): three training
# recipes, each collect -> BC -> RLDT for SEEDS (rldt-train benchmark, resumable), every seed's
# BC and RLDT policy exported, then all of them evaluated under each perturbation
# (rldt-train robustness: 100 episodes per model and row, the same episodes everywhere).
#
#   nominal     config/train/cube_push.yaml                      (the bare simulator)
#   deploy      + env.max_delta_per_tick=0.1 env.action_delay_ticks=[0,2]  (filter + latency)
#   randomized  config/train/cube_push_robust.yaml               (+ domain randomization)
#
# Long (about 20 min of one free core per recipe and seed, plus ~15 min of evaluation): run it
# unattended and niced, e.g. `nohup nice -n 19 bash scripts/sim2real_experiment.sh &`. A killed
# run started again continues where it stopped (benchmark resumes, exports are redone).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-reports/sim2real}
SEEDS=${SEEDS:-0 1 2}
EPISODES=${EPISODES:-100}
TRAIN=${TRAIN:-.venv/bin/rldt-train}
read -r -a seeds <<< "$SEEDS"

declare -A recipe=(
  [nominal]="--config config/train/cube_push.yaml"
  [deploy]="--config config/train/cube_push.yaml env.max_delta_per_tick=0.1 env.action_delay_ticks=[0,2]"
  [randomized]="--config config/train/cube_push_robust.yaml"
)
read -r -a names <<< "${NAMES:-nominal randomized deploy}"   # deploy: the ablation, last

for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  $TRAIN benchmark ${recipe[$name]} --seeds "${seeds[@]}" --jobs 1 --out "$OUT/$name"
  for s in "${seeds[@]}"; do
    run="$OUT/$name/seed_$s"
    $TRAIN export --checkpoint "$run/pretrain/policy_bc.pt" --task cube_push \
      --out "$OUT/models/${name}_bc_s$s" > /dev/null
    $TRAIN export --checkpoint "$run/finetune/policy_finetuned.pt" --task cube_push \
      --out "$OUT/models/${name}_rldt_s$s" > /dev/null
  done
done

for stage in bc rldt; do
  models=()
  for name in nominal deploy randomized; do
    [[ -d "$OUT/models/${name}_${stage}_s${seeds[0]}" ]] || continue
    for s in "${seeds[@]}"; do models+=(--model "$name=$OUT/models/${name}_${stage}_s$s"); done
  done
  # Every perturbation on top of the robot's command filter (config/policy.yaml) ...
  $TRAIN robustness "${models[@]}" --episodes "$EPISODES" --out "$OUT/robustness_$stage" \
    --title "cube_push ${stage^^}: nominal vs deployment vs randomized training"
  # ... and latency alone in the bare simulator (no filter), where nominal training was done.
  $TRAIN robustness "${models[@]}" --episodes "$EPISODES" --filter 0 \
    --perturb action_delay=1,2 --out "$OUT/delay_nofilter_$stage" \
    --title "cube_push ${stage^^}: action delay without the command filter"
done
echo "sim2real: reports in $OUT/robustness_{bc,rldt} and $OUT/delay_nofilter_{bc,rldt}"
