"""Failures over time: records grouped into incidents (same destination, same diagnosis), the
reports over them, and the watch loop that alerts when an incident starts, grows or ends.

`build_report(paths)` is what `mailtriage report` calls; `IncidentGrouper` is the streaming core
shared with `watch` and any other front end.
"""

from __future__ import annotations

from .group import RETRY_HOURS, DistinctCounter, Incident, IncidentGrouper, Report, build_report

__all__ = ["RETRY_HOURS", "DistinctCounter", "Incident", "IncidentGrouper", "Report", "build_report"]
