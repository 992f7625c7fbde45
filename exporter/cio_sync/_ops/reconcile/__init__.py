"""Does Customer.io hold what the warehouse says? Two checks through the App API:

* :func:`reconcile`: for each Customer.io segment mapped to a SQL predicate over a model, the
  warehouse count against the segment's count (and, optionally, the members on each side);
* :func:`spot_check`: for a random sample of people of a people model, the mart row (encoded
  exactly as ``cio-export`` sends it) against the person's attributes in Customer.io, their
  latest events against the person's recent activity, and duplicate profiles for one email.

Both read the warehouse through the dbt profile's connection (read only) and close it before
calling Customer.io.

The package: common (tolerances, warehouse reads, finding a model), segments (reconcile),
spot_check.
"""

from .common import Tolerance, find_model, report_json
from .segments import SegmentMapping, SegmentResult, load_reconcile_config, reconcile
from .spot_check import PersonReport, SpotCheckReport, same_value, spot_check

__all__ = [
    "PersonReport",
    "SegmentMapping",
    "SegmentResult",
    "SpotCheckReport",
    "Tolerance",
    "find_model",
    "load_reconcile_config",
    "reconcile",
    "report_json",
    "same_value",
    "spot_check",
]
