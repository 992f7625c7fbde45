"""Deciding what is sent: what blocks a model before its rows (checks: build proof, scope,
payload shape, identifier changes), and the pure per-row policy (rules: send, skip, reject,
hold, wait, merge)."""
