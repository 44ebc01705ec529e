"""CSV export of the inspections a filter selects, written in chunks (never all rows in memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TextIO

from core.analytics.filters import AnalyticsFilter
from core.studio import Studio
from storage import analytics_queries as q
from storage.analytics_queries import RECENT_COLUMNS

CHUNK_ROWS = 5000
CSV_COLUMNS = [c for c in RECENT_COLUMNS if c != "opinions"]


def csv_chunks(studio: Studio, flt: AnalyticsFilter, chunk_rows: int = CHUNK_ROWS) -> Iterator[str]:
    """The CSV text (header first) in pieces of at most ``chunk_rows`` inspections, oldest first."""
    keep = [RECENT_COLUMNS.index(c) for c in CSV_COLUMNS]
    with studio.transaction() as session:
        scope = flt.scope(session)
        yield _csv_text([CSV_COLUMNS])
        for rows in q.stream_rows(session, scope, chunk_rows):
            yield _csv_text([[_cell(row[i]) for i in keep] for row in rows])


def write_csv(studio: Studio, flt: AnalyticsFilter, out: TextIO, chunk_rows: int = CHUNK_ROWS) -> None:
    """Write the export to ``out`` chunk by chunk."""
    for text in csv_chunks(studio, flt, chunk_rows):
        out.write(text)


def _cell(value: object) -> object:
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else value


def _csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
