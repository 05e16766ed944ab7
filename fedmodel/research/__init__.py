"""Tools over finished runs and plans: privacy plan, sweep report, audit.

Nothing here imports `fedmodel.federation` (or Flower).
"""
