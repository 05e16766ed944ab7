"""Record-level DP-SGD for each client: calibrate, wrap, account, persist.

`client_plan.plan_privacy` calibrates noise for a target (epsilon, delta);
`engine.private_training` wraps the training objects with Opacus;
`ledger.PrivacyLedger` keeps each client's budget on disk, charged before an
update leaves the client. Every epsilon comes from `calibration.epsilon_for`.
Nothing here imports Flower. Loading the package imports none of its modules:
import each name from the module that defines it, so a module that only reads
a ledger file (`ledger_record`, `ledger_holding`: a site's ledger query)
costs a message process neither Opacus nor torch.
"""
