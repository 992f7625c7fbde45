"""A run: its plan and sink (runner), one model's sync, whatever its kind (model_sync), the
kinds of Customer.io data as plug-ins (kinds), Customer.io's answers recorded (outcomes), what
the run did (results), its settings (options) and its memory kept flat (memory)."""
