"""The SQL of one flush: read what its commands touch (one query), and turn a plan's revisions into rows.

The read is one query per project: the latest revision of every id the commands name, and of every
current end-user vote on the traces new votes are cast on (one vote per user); it used to be two or
three queries, and each query has a fixed cost of a few milliseconds on the embedded engine. The rules
that decide what to write are in :mod:`feedback_service.domain.feedback.write_plan`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

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
from feedback_service.store.query_params import StringArray
from feedback_service.store.rows import SELECT_LIST, TABLE, StoredRow, to_row

# Latest revision per id, tombstones included, straight from the primary key: correct before
# merges without FINAL. The vote part adds the current votes on some traces (user_votes' key).
_LATEST = f"SELECT {SELECT_LIST} FROM {TABLE} WHERE project = {{project:String}} AND "
_BY_ID = "feedback_id IN {ids:Array(String)}"
_VOTES = (
    "feedback_id IN (SELECT feedback_id FROM user_votes FINAL "
    "WHERE project = {project:String} AND trace_id IN {traces:Array(String)})"
)
_LATEST_ORDER = " ORDER BY revision DESC LIMIT 1 BY feedback_id"


def latest_query(*, by_id: bool, votes: bool) -> str:
    condition = " OR ".join(part for part, wanted in ((_BY_ID, by_id), (_VOTES, votes)) if wanted)
    return f"{_LATEST}({condition}){_LATEST_ORDER}"


def read_latest(client: Client, project: str, ids: Sequence[str]) -> list[StoredRow]:
    if not ids:
        return []
    rows = client.query(latest_query(by_id=True, votes=False), parameters={"project": project, "ids": StringArray(ids)})
    return [StoredRow(raw) for raw in rows.result_rows]


def _wanted(commands: Sequence[Command]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per project: the ids the commands name, and the traces new votes are cast on."""
    ids: dict[str, set[str]] = defaultdict(set)
    traces: dict[str, set[str]] = defaultdict(set)
    for command in commands:
        if isinstance(command, Create):
            feedback = command.new.feedback
            if command.new.check_existing:
                ids[feedback.project].add(feedback.feedback_id)
            if is_vote(feedback):
                traces[feedback.project].add(feedback.trace_id)
        else:
            ids[command.project].add(command.feedback_id)
    return ids, traces


def read_state(
    client: Client, commands: Sequence[Command], *, pending_votes: Mapping[VoteKey, str | None] | None = None
) -> StoredState:
    """The stored state the commands touch (one query per project, usually one in all).

    ``pending_votes``: vote changes this process wrote that user_votes does not show yet (the deriver
    feeds it after the callers have their answer); they override what user_votes says.
    """
    ids, traces = _wanted(commands)
    overriding = {key: vote for key, vote in (pending_votes or {}).items() if key[1] in traces.get(key[0], ())}
    for (project, _trace, _key, _author), vote in overriding.items():
        if vote is not None:
            ids[project].add(vote)
    found = StoredState()
    vote_created: dict[VoteKey, datetime] = {}
    for project in ids.keys() | traces.keys():
        project_ids, project_traces = ids.get(project, set()), traces.get(project, set())
        parameters: dict[str, Any] = {"project": project}
        if project_ids:
            parameters["ids"] = StringArray(project_ids)
        if project_traces:
            parameters["traces"] = StringArray(project_traces)
        sql = latest_query(by_id=bool(project_ids), votes=bool(project_traces))
        for raw in client.query(sql, parameters=parameters).result_rows:
            row = StoredRow(raw)
            feedback = row.feedback
            found.states[(project, feedback.feedback_id)] = State(feedback, row.fingerprint, row.deleted)
            if row.deleted or not is_vote(feedback) or feedback.trace_id not in project_traces:
                continue
            # One current vote per key; should two replicas race, the newest is the one that counts.
            key = vote_key(feedback)
            assert feedback.create_time is not None
            if key not in vote_created or feedback.create_time > vote_created[key]:
                vote_created[key] = feedback.create_time
                found.votes[key] = feedback.feedback_id
    for key, vote in overriding.items():
        if vote is None:
            found.votes.pop(key, None)
        else:
            found.votes[key] = vote
    return found


def revision_rows(revisions: Sequence[Revision]) -> list[list[Any]]:
    return [to_row(r.feedback, fingerprint=r.fingerprint, deleted=r.deleted, prev=r.replaces) for r in revisions]
