#!/usr/bin/env bash
# Named scenario: conf/experiment/banks_eps8.yaml. Extra Hydra overrides pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
make --quiet install
exec .venv/bin/fedmodel simulate experiment=banks_eps8 "$@"
