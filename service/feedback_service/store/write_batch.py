"""The SQL of one flush: read what its commands touch, and turn a plan's revisions into one Native block.

The read is one query per project when it finds nothing (the usual case for new feedback): which of the
ids the commands name exist, and the current end-user votes on the traces new votes are cast on (one vote
per user), read from ``user_votes`` without FINAL and resolved here (FINAL cost 2-3x the rest of the
query, and grew with the table). Only ids found that way are read whole, by primary key, in a second
query. Each query has a fixed cost of a few milliseconds on the embedded engine. The rules that decide
what to write are in :mod:`feedback_service.domain.feedback.write_plan`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from feedback_service.domain.feedback.listing import micros_since_epoch
from feedback_service.domain.feedback.write_plan import (
    Command,
    Create,
    Revision,
    State,
    StoredState,
    VoteKey,
    is_vote,
    vote_key,
)
from feedback_service.domain.model import Feedback
from feedback_service.store.query_params import StringArray
from feedback_service.store.rows import SELECT_LIST, TABLE, RowBlock, StoredRow

# Latest revision per id, tombstones included, straight from the primary key: correct before
# merges without FINAL.
_BY_ID = "feedback_id IN {ids:Array(String)}"
_LATEST = (
    f"SELECT {SELECT_LIST} FROM {TABLE} WHERE project = {{project:String}} AND {_BY_ID} "
    "ORDER BY revision DESC LIMIT 1 BY feedback_id"
)
# Which ids exist (only the id column is read: the rows of ids that exist are read afterwards), and every
# user_votes row on some traces, unmerged: resolved by _current_votes.
_EXISTING = (
    "SELECT 0 AS vote, feedback_id, '' AS v_trace, '' AS v_key, '' AS v_author, toInt64(0) AS v_created, "
    f"toUInt8(0) AS v_deleted FROM {TABLE} WHERE project = {{project:String}} AND {_BY_ID}"
)
_VOTE_ROWS = (
    "SELECT 1 AS vote, feedback_id, trace_id AS v_trace, toString(key) AS v_key, author AS v_author, "
    "toUnixTimestamp64Micro(create_time) AS v_created, is_deleted AS v_deleted "
    "FROM user_votes WHERE project = {project:String} AND trace_id IN {traces:Array(String)}"
)


def read_latest(client: Client, project: str, ids: Sequence[str]) -> list[StoredRow]:
    if not ids:
        return []
    rows = client.query(_LATEST, parameters={"project": project, "ids": StringArray(ids)})
    return [StoredRow(raw) for raw in rows.result_rows]


_Wanted = dict[str, set[str]]  # project -> ids or traces


def _wanted(commands: Sequence[Command]) -> tuple[_Wanted, _Wanted, _Wanted]:
    """Per project: the ids creates name (usually new: probed first), the ids updates and deletes name
    (usually stored: read whole at once), and the traces new votes are cast on."""
    created: _Wanted = defaultdict(set)
    changed: _Wanted = defaultdict(set)
    traces: _Wanted = defaultdict(set)
    for command in commands:
        if isinstance(command, Create):
            feedback = command.new.feedback
            if command.new.check_existing:
                created[feedback.project].add(feedback.feedback_id)
            if is_vote(feedback):
                traces[feedback.project].add(feedback.trace_id)
        else:
            changed[command.project].add(command.feedback_id)
    return created, changed, traces


def probe_query(*, by_id: bool, votes: bool) -> str:
    return " UNION ALL ".join(part for part, wanted in ((_EXISTING, by_id), (_VOTE_ROWS, votes)) if wanted)


def _current_votes(rows: Sequence[Sequence[Any]], project: str) -> dict[VoteKey, str]:
    """The current vote per key from user_votes rows, as FINAL would pick it: the newest create wins
    (ReplacingMergeTree(create_time, is_deleted)); a vote's later revisions share its create_time and win
    by being inserted later, and since the last one of a deleted vote is its tombstone (deletes are final),
    a tombstone wins a tie. A key whose winner is a tombstone has no current vote."""
    best: dict[VoteKey, tuple[int, int, str]] = {}
    for _what, feedback_id, trace_id, key, author, created_us, deleted in rows:
        ballot = (project, trace_id, key, author)
        rank = (created_us, deleted, feedback_id)
        if ballot not in best or rank > best[ballot]:
            best[ballot] = rank
    return {ballot: feedback_id for ballot, (_, deleted, feedback_id) in best.items() if not deleted}


def read_state(
    client: Client, commands: Sequence[Command], *, pending_votes: Mapping[VoteKey, str | None] | None = None
) -> StoredState:
    """The stored state the commands touch (per project: one query, two when it finds anything).

    ``pending_votes``: vote changes this process wrote that user_votes does not show yet (the deriver
    feeds it after the callers have their answer); they override what user_votes says.
    """
    created, changed, traces = _wanted(commands)
    overriding = {key: vote for key, vote in (pending_votes or {}).items() if key[1] in traces.get(key[0], ())}
    found = StoredState()
    for project in created.keys() | changed.keys() | traces.keys():
        project_ids, project_traces = created.get(project, set()), traces.get(project, set())
        # Whole rows of: the ids updates and deletes name, the votes this process wrote since user_votes
        # last caught up, and (below) the ids creates name that exist and the current votes.
        wanted = set(changed.get(project, ()))
        wanted.update(vote for (p, _t, _k, _a), vote in overriding.items() if p == project and vote is not None)
        if project_ids or project_traces:
            parameters: dict[str, Any] = {"project": project}
            if project_ids:
                parameters["ids"] = StringArray(project_ids)
            if project_traces:
                parameters["traces"] = StringArray(project_traces)
            sql = probe_query(by_id=bool(project_ids), votes=bool(project_traces))
            probed = client.query(sql, parameters=parameters).result_rows
            wanted.update(row[1] for row in probed if not row[0])
            wanted.update(_current_votes([row for row in probed if row[0]], project).values())
        if wanted:
            _read_whole(client, project, wanted, project_traces, found)
    for key, vote in overriding.items():
        if vote is None:
            found.votes.pop(key, None)
        else:
            found.votes[key] = vote
    return found


def _read_whole(client: Client, project: str, ids: set[str], traces: set[str], found: StoredState) -> None:
    """The latest revision of ``ids`` into ``found``, and the live votes among them on ``traces``."""
    vote_created: dict[VoteKey, datetime] = {}
    rows = client.query(_LATEST, parameters={"project": project, "ids": StringArray(ids)})
    for raw in rows.result_rows:
        row = StoredRow(raw)
        feedback = row.feedback
        found.states[(project, feedback.feedback_id)] = State(feedback, row.fingerprint, row.deleted)
        if row.deleted or not is_vote(feedback) or feedback.trace_id not in traces:
            continue
        # One current vote per key; should two replicas race, the newest is the one that counts.
        key = vote_key(feedback)
        assert feedback.create_time is not None
        if key not in vote_created or feedback.create_time > vote_created[key]:
            vote_created[key] = feedback.create_time
            found.votes[key] = feedback.feedback_id


def _micros(moment: datetime | None) -> int:
    assert moment is not None  # stored revisions carry their times
    return micros_since_epoch(moment)


def _metadata(feedback: Feedback) -> dict[str, str]:
    metadata = feedback.metadata
    return metadata if type(metadata) is dict else dict(metadata)


_NO_PREV = (0, 0, 0, 0.0, "", 0, 0)  # prev_exists, prev_value_kind, prev_thumb, prev_score, prev_label, has_*


def _prev(prev: Feedback | None) -> tuple[int, int, int, float, str, int, int]:
    if prev is None:
        return _NO_PREV
    value = prev.value
    return (1, value.kind, value.thumb, value.score, value.label, int(bool(prev.comment)), int(bool(prev.correction)))


def revision_block(revisions: Sequence[Revision]) -> RowBlock:
    """The revisions as one Native block, built column by column (rows.COLUMNS order): enums as their
    numbers (the model's numbers are the Enum8 values) and times as microseconds, which the driver
    writes as they are."""
    every = [r.feedback for r in revisions]
    values = [f.value for f in every]
    created = [_micros(f.create_time) for f in every]
    # A create's update time is its create time (one object): its number is computed once.
    updated = [
        c if f.update_time is f.create_time else _micros(f.update_time) for f, c in zip(every, created, strict=True)
    ]
    if any(r.replaces is not None for r in revisions):
        prevs = (_prev(r.replaces) for r in revisions)
        prev_columns: list[Sequence[Any]] = [list(column) for column in zip(*prevs, strict=True)]
    else:
        count = len(revisions)
        prev_columns = [[value] * count for value in _NO_PREV]
    return RowBlock.of_columns(
        [
            [f.project for f in every],
            [f.feedback_id for f in every],
            [f.trace_id for f in every],
            [f.span_id for f in every],
            [f.session_id for f in every],
            [f.model for f in every],
            [f.model_version for f in every],
            [f.key for f in every],
            [v.kind for v in values],
            [v.thumb for v in values],
            [v.score for v in values],
            [v.label for v in values],
            [f.comment for f in every],
            [f.correction for f in every],
            [f.source for f in every],
            [f.author for f in every],
            [_metadata(f) for f in every],
            created,
            updated,
            [f.revision for f in every],
            [1 if r.deleted else 0 for r in revisions],
            [r.fingerprint for r in revisions],
            *prev_columns,
            [f.created_by for f in every],
            [f.updated_by for f in every],
        ]
    )
