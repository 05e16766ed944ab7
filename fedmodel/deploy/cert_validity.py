"""How long a SuperLink certificate is valid, in days: the default and the bounds.

Used by `create_superlink_certificates` and by `fedmodel certs superlink`'s
arguments; kept apart from certs.py so `--help` does not import cryptography.
"""

DEFAULT_DAYS = 365
# A century: longer than any key should live, and far inside the dates a
# certificate can hold (to the year 9999).
MAX_DAYS = 36_500
