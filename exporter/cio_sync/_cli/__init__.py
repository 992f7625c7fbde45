"""What cli.py's commands share (options, the dbt context) and the operations commands (status,
reconcile, spot-check, exposures, serve): options and parsing only, the work is elsewhere."""
