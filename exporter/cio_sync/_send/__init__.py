"""Sending: items packed into batches (batch), where batches go (sinks: the Track API or an
outbox), and the Track API client with its one retry policy (transport); its settings from the
environment (config)."""
