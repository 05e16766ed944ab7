#!/usr/bin/env bash
# Ready-made privacy-utility sweep on the hospital task (4 clients, Dirichlet 0.5).
# Extra Hydra overrides apply to every run, e.g. num_rounds=5 (not num_clients:
# the centralized runs hold everything in one client). EPSILONS and SEEDS pick
# the budgets and seeds (see privacy_sweep.sh).
set -euo pipefail
exec "$(dirname "$0")/privacy_sweep.sh" hospital "$@"
