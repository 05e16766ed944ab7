#!/usr/bin/env bash
# Privacy-utility sweep for one task (hospital or bank): federated DP-SGD at
# epsilon 1, 3, 8; central (client-level) DP at the same budgets; the non-private
# federated run; the centralized baseline (one client) with and without DP-SGD.
# Two seeds each. Then `fedmodel report` writes the CSV, table and plot.
# Usage: simulations/privacy_sweep.sh TASK [hydra overrides for every run...]
# The budgets are $EPSILONS (default 1,3,8), the seeds $SEEDS (default 42,43).
# An override of num_clients, experiment or privacy.target_epsilon is refused
# (the centralized runs set num_clients=1; the budgets come from EPSILONS).
# The sweep folder is $SWEEP_DIR (default multirun/sweep-TASK-<date-time>).
# Runs skip distillation (distill=off): the sweep measures the federated model.
# An extra override of `seed` or `distill` replaces the script's (SEEDS, distill=off).
set -euo pipefail
cd "$(dirname "$0")/.."
source simulations/given_keys.sh
if (($# == 0)) || [[ $1 == *=* || $1 == -* ]]; then
  got="'${1-}'"
  (($#)) || got="no argument"
  echo "privacy_sweep.sh: error: the first argument must be the task (bank or" \
    "hospital), got ${got}: simulations/privacy_sweep.sh TASK [overrides...]" >&2
  exit 2
fi
# Keys the script sets per group: a user's num_clients would win over
# experiment=centralized's 1 without a word (no centralized row in the report),
# and an experiment or budget is refused only by the group that sets it too.
for given in "${@:2}"; do
  case "$(override_key "$given")" in
  num_clients)
    echo "privacy_sweep.sh: error: ${given} would replace experiment=centralized's" \
      "num_clients=1 in the centralized runs, and the report would have no" \
      "centralized row: leave num_clients out (the federated runs take the config's)" >&2
    exit 2
    ;;
  experiment)
    echo "privacy_sweep.sh: error: ${given}: the sweep's centralized runs set" \
      "experiment=centralized; leave experiment out and give the keys you want" \
      "from it as overrides" >&2
    exit 2
    ;;
  privacy.target_epsilon)
    echo "privacy_sweep.sh: error: ${given}: the sweep sets privacy.target_epsilon" \
      "itself; choose its budgets with EPSILONS (default 1,3,8), e.g." \
      "EPSILONS=${given#*=} simulations/privacy_sweep.sh TASK ..." >&2
    exit 2
    ;;
  esac
done
make --quiet install
task="$1"
shift
sweep="${SWEEP_DIR:-multirun/sweep-${task}-$(date +%Y%m%d-%H%M%S)}"
seeds="${SEEDS:-42,43}"
epsilons="${EPSILONS:-1,3,8}"
mapfile -t own < <(not_given "seed=${seeds}" distill=off -- "$@")
simulate() {
  .venv/bin/fedmodel simulate --multirun "task=${task}" "${own[@]}" "$@"
}
simulate "hydra.sweep.dir=${sweep}/federated-dpsgd" privacy=dpsgd \
  "privacy.target_epsilon=${epsilons}" "$@"
simulate "hydra.sweep.dir=${sweep}/federated-off" privacy=off "$@"
simulate "hydra.sweep.dir=${sweep}/federated-central" privacy=central \
  "privacy.target_epsilon=${epsilons}" "$@"
simulate "hydra.sweep.dir=${sweep}/centralized-dpsgd" experiment=centralized \
  privacy=dpsgd "privacy.target_epsilon=${epsilons}" "$@"
simulate "hydra.sweep.dir=${sweep}/centralized-off" experiment=centralized \
  privacy=off "$@"
exec .venv/bin/fedmodel report "${sweep}"
