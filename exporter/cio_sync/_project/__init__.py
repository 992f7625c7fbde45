"""The dbt project as the exporter sees it: artifacts (manifest, run results, the adapter),
selection, the gates that keep a failed build or test from being sent, and each model's
`meta.cio` (ModelSpec, SyncModel)."""
