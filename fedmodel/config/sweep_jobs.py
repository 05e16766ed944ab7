"""The jobs of a `--multirun` sweep, listed as Hydra's basic sweeper lists them.

`fedmodel simulate --multirun` checks every job before the first one runs;
`fedmodel sweep-report` names the jobs a stopped sweep never ran.
"""

from __future__ import annotations

from fedmodel.config.compose import override_parser


def sweep_jobs(
    overrides: list[str], params: dict[str, str] | None = None
) -> list[list[str]]:
    """Each job's overrides, in the order the sweeper numbers them (job 0 first).

    `params` are the sweeper's own (`hydra.sweeper.params`), which Hydra puts
    before the command line's overrides. Raises Hydra's HydraException where
    only Hydra can list the jobs: an override it cannot parse, or a glob over
    a group's options (that takes Hydra's config loader).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    given = [f"{key}={value}" for key, value in (params or {}).items()]
    parsed = override_parser().parse_overrides([*given, *overrides])
    batches = BasicSweeper.split_arguments(parsed, None)
    return [job for batch in batches for job in batch]


def swept_values(job: list[str], jobs: list[list[str]]) -> str:
    """`job`'s overrides that tell the sweep's jobs apart, separated by spaces.

    Every job of a sweep sets the same keys in the same order (one value of
    each swept key); the ones whose values differ between jobs are named.
    """
    return " ".join(
        override
        for index, override in enumerate(job)
        if len({other[index] for other in jobs}) > 1
    )
