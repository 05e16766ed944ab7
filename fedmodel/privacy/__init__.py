"""Differential privacy: each client's DP-SGD, central DP's plan, the audit's bounds.

Record-level (`privacy=dpsgd`): `client_plan.plan_privacy` calibrates noise
for a target (epsilon, delta); `engine.private_training` wraps the training
objects with Opacus; `ledger.PrivacyLedger` keeps each client's budget on
disk, charged before an update leaves the client. Client-level
(`privacy=central`): `client_level.plan_client_level` calibrates the
server's noise, charged to a ledger of the same kind in the run folder.
`audit_bounds` and `membership_attack` turn a membership attack's losses into
an empirical lower bound on epsilon. Every epsilon a ledger charges or a run
states comes from `calibration.epsilon_for`.
Nothing here imports Flower. Loading the package imports none of its modules:
import each name from the module that defines it, so a module that only reads
a ledger file (`ledger_record`, `ledger_holding`: a site's ledger query)
costs a message process neither Opacus nor torch.
"""
