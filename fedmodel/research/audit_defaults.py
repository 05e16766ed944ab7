"""The audit's defaults, used by `audit_run` and by `fedmodel audit`'s arguments.

Kept apart from audit.py so the command shows them in `--help` without
importing torch or datasets.
"""

# Confidence of the epsilon lower bound, in (0, 1).
CONFIDENCE = 0.95
# Members and non-members attacked, each.
MAX_RECORDS = 2000
# The fewest members and non-members an attack takes: the least `--max-records`
# allowed, and the fewest held-out records a client must hold to be audited
# (`require_held_out`). The threshold is chosen on one half of each set and the
# bound computed on the other.
MIN_RECORDS = 2
# Seeds the record draw and the threshold/evaluation split.
SEED = 0
