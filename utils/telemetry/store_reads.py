"""What an event store answers about the requests it holds (SQLite and PostgreSQL alike).

A mixin of `EventStore`: it needs only `_read(sql, params)`, `_columns(table)` and `location`,
which each backend provides, so the queries are written once for both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from utils.telemetry.store_schema import (
    EVENT_COLUMNS,
    EVENT_DATA_COLUMN,
    MARKED_RUNS_TABLE,
    SCHEMA_VERSION,
    RequestRecord,
)


class StoreReads:
    """Reads of one request, its events and trace ids, and the store's row counts."""

    location: str

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _columns(self, table: str) -> set[str]:
        raise NotImplementedError

    def _has_trace_columns(self) -> bool:
        return {"trace_id", "span_id"} <= self._columns("requests")

    def get_request(self, request_id: str) -> RequestRecord | None:
        trace = "trace_id, span_id" if self._has_trace_columns() else \
            "NULL AS trace_id, NULL AS span_id"
        rows = self._read(
            f"SELECT request_id, user_key, context_json, status, {trace} FROM requests"
            " WHERE request_id = ?", (request_id,),
        )
        if not rows:
            return None
        row = rows[0]
        exposures = [dict(r) for r in self._read(
            "SELECT config_key, variation_key, in_experiment, tracker_token, tracker_simulated"
            " FROM exposures"
            " WHERE request_id = ? ORDER BY id", (request_id,),
        )]
        return RequestRecord(row["request_id"], row["user_key"],
                             json.loads(row["context_json"]), row["status"], exposures,
                             row["trace_id"], row["span_id"])

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        """A request's event rows in write order, `data` parsed (None in a store before 5)."""
        data = EVENT_DATA_COLUMN if EVENT_DATA_COLUMN in self._columns("events") else "NULL"
        rows = self._read(f"SELECT {EVENT_COLUMNS}, {data} AS data_json FROM events"
                          " WHERE request_id = ? ORDER BY id", (request_id,))
        return [{**{k: v for k, v in dict(r).items() if k != "data_json"},
                 "data": None if r["data_json"] is None else json.loads(r["data_json"])}
                for r in rows]

    def trace_ids(self, request_ids: Sequence[str]) -> dict[str, str]:
        """The trace id of each of `request_ids` that was traced (absent: not traced)."""
        if not request_ids or not self._has_trace_columns():
            return {}
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(request_ids))
        for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
            chunk = ids[start:start + 500]
            found.update((r[0], r[1]) for r in self._read(
                "SELECT request_id, trace_id FROM requests WHERE trace_id IS NOT NULL AND"
                f" request_id IN ({', '.join('?' * len(chunk))})", chunk))
        return found

    def summary(self) -> dict[str, Any]:
        """Row counts per table and per event key."""
        tables = {t: self._read(f"SELECT COUNT(*) FROM {t}")[0][0]
                  for t in ("requests", "exposures", "events", "feedback", MARKED_RUNS_TABLE)}
        by_key = {r[0]: r[1] for r in self._read(
            "SELECT event_key, COUNT(*) FROM events GROUP BY event_key ORDER BY event_key")}
        simulated = self._read("SELECT COUNT(*) FROM events WHERE simulated = 1")[0][0]
        return {"path": self.location, "schema_version": SCHEMA_VERSION, "tables": tables,
                "events_by_key": by_key, "simulated_events": simulated}
