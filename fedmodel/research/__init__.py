"""Tools over finished runs and plans: privacy plan, sweep report, audit.

Nothing here imports Flower; of `fedmodel.federation`, only the server's checks
before round 1 (`preflight`), so privacy-plan refuses and warns as the run will.
"""
