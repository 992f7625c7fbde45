"""A Customer.io Track API look-alike for integration tests and benchmarks.

It listens on 127.0.0.1 only, checks requests against Customer.io's published limits, records
what it accepted, and can be told to misbehave (429s, 5xx, dropped connections, slow answers).
See docs/fake-server.md.
"""

from ._runner import FakeCustomerIO
from ._settings import Settings

__all__ = ["FakeCustomerIO", "Settings"]
