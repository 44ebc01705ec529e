"""CSV export of the inspections a filter selects, written in chunks (never all rows in memory).

A reviewed inspection whose verdict was signed (a tool with signed review) carries its signature: the
signer's printed name, the UTC time, the meaning and the content hash it is bound to; a corrected verdict
carries the correction's signature (the newest)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TextIO

from core.analytics.filters import AnalyticsFilter
from core.studio import Studio
from storage import accounts as accounts_repo
from storage import analytics_queries as q
from storage.analytics_queries import RECENT_COLUMNS

CHUNK_ROWS = 5000
SIGNATURE_COLUMNS = ["signed_by", "signed_at_utc", "signature_meaning", "signature_content_hash"]
CSV_COLUMNS = [c for c in RECENT_COLUMNS if c != "opinions"] + SIGNATURE_COLUMNS


def csv_chunks(studio: Studio, flt: AnalyticsFilter, chunk_rows: int = CHUNK_ROWS) -> Iterator[str]:
    """The CSV text (header first) in pieces of at most ``chunk_rows`` inspections, oldest first."""
    keep = [RECENT_COLUMNS.index(c) for c in CSV_COLUMNS if c in RECENT_COLUMNS]
    with studio.transaction() as session:
        scope = flt.scope(session)
        yield _csv_text([CSV_COLUMNS])
        for rows in q.stream_rows(session, scope, chunk_rows):
            signed = accounts_repo.latest_signatures(session, "inspection", [str(row[0]) for row in rows])
            yield _csv_text([[_cell(row[i]) for i in keep] + _signature_cells(signed.get(str(row[0])))
                             for row in rows])


def write_csv(studio: Studio, flt: AnalyticsFilter, out: TextIO, chunk_rows: int = CHUNK_ROWS) -> None:
    """Write the export to ``out`` chunk by chunk."""
    for text in csv_chunks(studio, flt, chunk_rows):
        out.write(text)


def _signature_cells(signature: accounts_repo.Signature | None) -> list[object]:
    if signature is None:
        return [""] * len(SIGNATURE_COLUMNS)
    return [signature.full_name or signature.username, _cell(signature.signed_at), signature.meaning,
            signature.content_hash]


def _cell(value: object) -> object:
    return value.isoformat(sep=" ") if hasattr(value, "isoformat") else value


def _csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
