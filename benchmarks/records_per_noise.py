"""What limits a strict budget: how many records each noise draw covers.

Each site privatises its own records, so a FedAvg round averages four
independent noise draws, each over one site's records. This runs the rule's
head settings (`head_fedavg.py` on `head_features.py`' cached encoder
features: the run's `plan_privacy`, onepass DP-SGD, FedAvg weighted by record
count) on bank and hospital, never the held-out scenario, in five arms:

- 4 sites, all their records, at epsilon e and at 2e;
- 4 sites, each cut to a random half of its records, at e and at 2e;
- the same records pooled into 1 site (one noise draw over all of them), at e
  and without privacy;

and privacy off for the whole and the halved sites. The pooled arms are
divided by the 4 sites' non-private run on all records, as the issue's
ratios are. If what a budget costs is
set by records x epsilon per site, half the records at 2e ends where all the
records end at e. Scores are on the union of the clients' local validation
splits, never a test split.

    .venv/bin/python benchmarks/records_per_noise.py [--scenarios bank hospital]
        [--epsilon 1] [--seeds 42 7]
"""

from __future__ import annotations

import argparse
import logging
import statistics
from typing import Any

from head_candidates import rule_candidate, run_accountant

# torch, transformers, Flower and Opacus are imported where they are used, after
# the arguments are checked: `--help` and a bad argument answer at once.


def halved(cached: dict[str, Any], seed: int) -> dict[str, Any]:
    """Each site keeps a random half of its training records."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    clients = []
    for x, y in cached["clients"]:
        keep = torch.randperm(len(y), generator=generator)[: len(y) // 2]
        clients.append((x[keep], y[keep]))
    return {**cached, "clients": clients}


def pooled(cached: dict[str, Any]) -> dict[str, Any]:
    """The sites' training records as one site's."""
    import torch

    x = torch.cat([x for x, _ in cached["clients"]])
    y = torch.cat([y for _, y in cached["clients"]])
    return {**cached, "clients": [(x, y)]}


def kept_records(whole: dict[str, Any], records: str, *, seed: int) -> dict[str, Any]:
    """The sites' records an arm trains on: "all", "half" or "pooled"."""
    if records == "half":
        return halved(whole, seed)
    if records == "pooled":
        return pooled(whole)
    return whole


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["bank", "hospital"])
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 7])
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import torch
    from head_features import features
    from head_fedavg import run

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    e = args.epsilon
    arms = [
        ("4 sites, all records", "all", 0.0),
        ("4 sites, half the records", "half", 0.0),
        ("4 sites, all records", "all", e),
        ("4 sites, all records", "all", 2 * e),
        ("4 sites, half the records", "half", e),
        ("4 sites, half the records", "half", 2 * e),
        ("1 site, all records pooled", "pooled", e),
        ("1 site, all records pooled", "pooled", 0.0),
    ]
    print(
        "| task | sites and records | epsilon | validation accuracy "
        "| over the 4 sites' non-private run on the same records "
        "| client 0's noise | sample rate |"
    )
    print("|---|---|---|---|---|---|---|")
    for task in args.scenarios:
        finals: dict[tuple[str, float], float] = {}
        for name, records, epsilon in arms:
            rows = []
            for seed in args.seeds:
                rows.append(
                    run(
                        kept_records(features(task, seed), records, seed=seed),
                        rule_candidate(epsilon),
                        epsilon=epsilon or None,
                        seed=seed,
                        accountant=run_accountant(),
                    )
                )
            final = statistics.fmean(r["final"] for r in rows)
            finals[(records, epsilon)] = final
            off = finals.get(("all" if records == "pooled" else records, 0.0))
            ratio = (
                f"{final / off:.3f}"
                if off and (epsilon or records == "pooled")
                else "-"
            )
            noise = f"{rows[0]['sigma0']:.2f}" if epsilon else "-"
            rate = f"{rows[0]['q0']:.3f}" if epsilon else "-"
            budget = f"{epsilon:g}" if epsilon else "off"
            print(
                f"| {task} | {name} | {budget} | {final:.4f} | {ratio} "
                f"| {noise} | {rate} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
