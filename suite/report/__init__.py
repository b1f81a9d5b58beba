"""Report: tables (CSV, Markdown, LaTeX), figures (PNG, PDF) and REPORT.md from a results folder.

The sections are declared in their own modules and listed in `suite.report.sections`; `build_report`
(suite.report.build) builds them. Names resolve on first use (PEP 562), so the workflow can read the
declarations without importing what builds them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_report": "suite.report.build",
    "CropRequest": "suite.report.declare",
    "ReportInputError": "suite.report.readers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'suite.report' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
