"""Each client's figures as the server keeps them, by client id, and which are spent.

A client whose next round would pass its budget trains on nothing, is
charged nothing and says so in its reply (`EXHAUSTED_KEY`). The strategy
keeps each client's latest reported figures by client id, and the checkpoint
keeps them, so which clients are spent is known across a resume; a client
whose operator reset its ledger reports not-spent again, and counts as not
spent from then on. Beside its latest report the server keeps what the run's
statement may not fall below (`figures_to_keep`): the epsilon a client
reported before its operator reset its ledger, and the epsilon and delta of a
reply refused for naming it (`with_refused_reply`); `kept_epsilon` is the
epsilon the run counts for it.

Node ids name no client for long: Flower 1.41 draws them at random for each
simulation and, without node authentication, for each SuperNode connection.
So the strategy skips a node that said its budget is spent only within one
server process, and the checkpoint keeps no node id. After a resume each
spent client is selected once more and answers "spent" again.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedmodel.federation.messages import EXHAUSTED_KEY, NUM_EXAMPLES_KEY
from fedmodel.privacy.figure_keys import (
    DELTA_KEY,
    EPSILON_BEFORE_RESET_KEY,
    EPSILON_KEY,
    LEDGER_RESETS_KEY,
    REFUSED_DELTA_KEY,
    REFUSED_EPSILON_KEY,
)

# A refused reply's figure, under the key the server keeps it as.
_REFUSED = {EPSILON_KEY: REFUSED_EPSILON_KEY, DELTA_KEY: REFUSED_DELTA_KEY}


def is_spent(figures: Mapping[str, float]) -> bool:
    """Whether a client's reported figures say its budget is spent."""
    return bool(figures.get(EXHAUSTED_KEY, 0))


def spent_clients(client_figures: Mapping[int, Mapping[str, float]]) -> set[int]:
    """The clients whose latest figures say their budget is spent, by client id."""
    return {client for client, figures in client_figures.items() if is_spent(figures)}


def kept_epsilon(figures: Mapping[str, float]) -> float:
    """A client's epsilon as the run counts it, the charges before a reset included.

    The largest of its latest report, the figure kept from before its
    operator reset its ledger (`figures_to_keep`) and that of a reply refused
    for naming it (`with_refused_reply`): what a round's line and
    metrics.jsonl show, as summary.json's statement does.
    """
    return max(
        figures.get(EPSILON_KEY, 0.0),
        figures.get(EPSILON_BEFORE_RESET_KEY, 0.0),
        figures.get(REFUSED_EPSILON_KEY, 0.0),
    )


def with_refused_reply(
    kept: Mapping[str, float], refused: Mapping[str, float]
) -> dict[str, float]:
    """A client's kept figures, counting a reply refused for naming it.

    Another node answered for the client (two sites started with one
    --site-id): the refused one was charged and its update reached the
    server, so its epsilon and delta count in the run's statement. They are
    kept apart from the figures the ledger check compares, which stay those
    of the node that answers for the client.
    """
    counted = dict(kept)
    for reported, key in _REFUSED.items():
        if reported in refused:
            counted[key] = max(kept.get(key, 0.0), refused[reported])
    return counted


def figures_to_keep(
    figures: dict[str, float], previous: Mapping[str, float] | None
) -> dict[str, float]:
    """A reply's figures as the server keeps them for its client.

    A spent client's refused round trained on nothing, but the client still
    holds the records its last round reported: their count is kept. A site
    whose operator reset its ledger reports a new budget's epsilon; the larger
    one it reported before is kept as `EPSILON_BEFORE_RESET_KEY` until the new
    one passes it, since the model already holds those rounds' updates. The
    figures of a reply refused for naming the client (`with_refused_reply`)
    are carried as they were.
    """
    if not previous:
        return figures
    kept = dict(figures)
    kept.update({key: previous[key] for key in _REFUSED.values() if key in previous})
    if is_spent(figures):
        kept[NUM_EXAMPLES_KEY] = previous.get(NUM_EXAMPLES_KEY, 0.0)
    before = previous.get(EPSILON_BEFORE_RESET_KEY, 0.0)
    if figures.get(LEDGER_RESETS_KEY, 0.0) > previous.get(LEDGER_RESETS_KEY, 0.0):
        before = max(before, previous.get(EPSILON_KEY, 0.0))
    if before > figures.get(EPSILON_KEY, 0.0):
        kept[EPSILON_BEFORE_RESET_KEY] = before
    return kept
