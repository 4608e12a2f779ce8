"""The report of a search: its front as a table, CSV and JSON; plots; an HTML page; and the
export of a chosen candidate as a trained ONNX model.

Everything here reads the state file read-only. matplotlib, jinja2, torch and onnx are imported
by the functions that need them, so importing this package is cheap.
"""

from edgeevo.report.front import (
    CSV_COLUMNS,
    FORMATS,
    SORT_KEYS,
    Progress,
    Row,
    SearchReport,
    Selection,
    load_report,
    render_table,
    render_text,
    search_progress,
    select,
    to_csv,
    to_json,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "SORT_KEYS",
    "Progress",
    "Row",
    "SearchReport",
    "Selection",
    "load_report",
    "render_table",
    "render_text",
    "search_progress",
    "select",
    "to_csv",
    "to_json",
]
