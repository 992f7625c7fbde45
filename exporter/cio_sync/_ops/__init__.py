"""Operations beside the run, reading the state and the project, never the run: status,
reconcile and spot-check against Customer.io's App API (reconcile, app_api), dbt exposures."""
