"""cio_sync: turn dbt marts into Customer.io people and events."""

__version__ = "0.1.0"
