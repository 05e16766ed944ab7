"""The names of the privacy figures a client reports, and of those the server adds.

A client's reply carries them in its metrics (`federation/messages.py`), the
server's checkpoint keeps each client's latest, and a resumed simulation
compares a client's ledger with them (`client/record_check.py`). Those
marked "kept by the server" are in no reply: the server adds them to a
client's figures, and the run's statement may not fall below them. Nothing
here imports anything.
"""

EPSILON_KEY = "epsilon"
DELTA_KEY = "delta"
NOISE_MULTIPLIER_KEY = "noise-multiplier"
SAMPLE_RATE_KEY = "sample-rate"
STEPS_KEY = "steps"
# Steps this round charged to the client's ledger (0 when it did not train).
ROUND_STEPS_KEY = "round-steps"
# How many times the site's operator archived its ledger (`fedmodel ledger reset`).
LEDGER_RESETS_KEY = "ledger-resets"
# Kept by the server, never reported: the largest epsilon a client reported in
# this run before its operator reset its ledger. The model holds the updates of
# those rounds, so the run's statement may not fall below it.
EPSILON_BEFORE_RESET_KEY = "epsilon-before-reset"
# Kept by the server, never reported: the largest epsilon and delta of a reply
# the server refused because another node answers for the client it names
# (two sites started with one --site-id). That site was charged and its
# update reached the server, so the run's statement may not fall below them.
REFUSED_EPSILON_KEY = "refused-reply-epsilon"
REFUSED_DELTA_KEY = "refused-reply-delta"
