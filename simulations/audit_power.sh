#!/usr/bin/env bash
# Audit power check: a small setup that overfits when non-private (tiny BERT, one
# client with 100 training records plus 20 canaries and 100 held-out records,
# full fine-tuning for 30 epochs), run once without DP and once at epsilon 1,
# then `fedmodel audit` on each. keep_best=false: the audit measures the trained
# model, not a public start it might keep. Extra Hydra overrides apply to both runs;
# one of a key set below replaces the script's value. The runs go to $AUDIT_DIR/off
# and $AUDIT_DIR/eps1 (default outputs/audit-power-<date-time>); an AUDIT_DIR that
# already holds either is refused (exit 2): a rerun needs a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
source simulations/given_keys.sh
out="${AUDIT_DIR:-outputs/audit-power-$(date +%Y%m%d-%H%M%S)}"
# fedmodel would refuse the run folder with advice (resume=true, hydra.run.dir=)
# for keys the script sets itself; say what its user can change, before anything.
for run in "${out}/off" "${out}/eps1"; do
  if [[ -e $run ]]; then
    echo "audit_power.sh: error: AUDIT_DIR=${out} already holds ${run} from an" \
      "earlier run: give a new AUDIT_DIR (e.g. AUDIT_DIR=${out}-2" \
      "simulations/audit_power.sh), or move ${out} away first" >&2
    exit 2
  fi
done
make --quiet install
small=(model=tiny task.max_train_examples=200 task.max_test_examples=200
  num_clients=1 partition=iid task.val_fraction=0.5 num_rounds=1 finetune=full
  finetune.learning_rate=0.005 finetune.local_epochs=30 finetune.batch_size=16
  audit.canaries=20 audit.reference_canaries=60 distill=off keep_best=false)
mapfile -t small < <(not_given "${small[@]}" -- "$@")
.venv/bin/fedmodel simulate "${small[@]}" privacy=off "hydra.run.dir=${out}/off" "$@"
.venv/bin/fedmodel simulate "${small[@]}" privacy=dpsgd privacy.target_epsilon=1 \
  "hydra.run.dir=${out}/eps1" "$@"
.venv/bin/fedmodel audit "${out}/off"
.venv/bin/fedmodel audit "${out}/eps1"
