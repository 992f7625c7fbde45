"""The status page: `cio-export report --html PATH` writes it as one self-contained HTML file, and
`cio-export serve` serves the same page.

The package: collect (what the page shows, read from the state, the marts and dbt's artifacts:
a `Report`), render (the `Report` as HTML, through Jinja2 with autoescape, the charts' data as
escaped JSON and uPlot inlined: the page fetches nothing). Templates, the page's script and
style, and the vendored uPlot (vendor/uplot, MIT) are package data.
"""

from .collect import Report, RunPoint, collect_report
from .render import render_html

__all__ = ["Report", "RunPoint", "collect_report", "render_html"]
