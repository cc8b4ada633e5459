"""`linefleet report`: one self-contained HTML page about the fleet, for a plant manager.

`build_report(ReportData) -> str` (in `html.py`) is pure; small loaders fill `ReportData` from
the reconciler's status, a metrics history file, the fleet repo's git history and the label
store. Every section is optional: a missing source is said plainly on the page.
"""
