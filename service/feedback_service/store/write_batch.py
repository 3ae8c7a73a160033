"""One flush of the write path: read what its commands touch, apply them in order, make the rows.

The read is one query per project: the latest revision of every id the commands name, and of every
current end-user vote on the traces new votes are cast on (one vote per user); it used to be two or
three queries, and each query has a fixed cost of a few milliseconds on the embedded engine.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from feedback_service.domain.errors import FeedbackServiceError, NotFoundError
from feedback_service.domain.model import Feedback, Source
from feedback_service.domain.ports import Change, CreateOutcome, CreateStatus, NewFeedback
from feedback_service.store.query_params import StringArray
from feedback_service.store.rows import SELECT_LIST, TABLE, StoredRow, to_row

FeedbackKey = tuple[str, str]  # project, feedback_id
VoteKey = tuple[str, str, str, str]  # project, trace_id, key, author


@dataclass(frozen=True, slots=True)
class Create:
    new: NewFeedback


@dataclass(frozen=True, slots=True)
class Update:
    project: str
    feedback_id: str
    change: Change


@dataclass(frozen=True, slots=True)
class Delete:
    project: str
    feedback_id: str
    now: datetime
    actor: str = ""


Command = Create | Update | Delete
Outcome = CreateOutcome | Feedback | None | FeedbackServiceError


@dataclass(frozen=True, slots=True)
class State:
    feedback: Feedback
    fingerprint: str
    deleted: bool


@dataclass(slots=True)
class StoredState:
    """What one read found: the latest revision per id, and the current vote per vote key."""

    states: dict[FeedbackKey, State]
    votes: dict[VoteKey, str]


def is_vote(feedback: Feedback) -> bool:
    return feedback.source is Source.USER and bool(feedback.author)


def vote_key(feedback: Feedback) -> VoteKey:
    return (feedback.project, feedback.trace_id, feedback.key, feedback.author)


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


def read_state(client: Client, commands: Sequence[Command]) -> StoredState:
    """The stored state the commands touch (one query per project, usually one in all)."""
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
    found = StoredState({}, {})
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
    return found


class Batch:
    """Applies commands in order on the stored state and its own earlier writes."""

    def __init__(self, stored: StoredState) -> None:
        self._stored = stored
        self.states: dict[FeedbackKey, State] = {}  # what this batch writes: the final state per key
        self.votes: dict[VoteKey, str | None] = {}  # vote keys this batch changes: the vote after it
        self.rows: list[list[Any]] = []
        self.projects: set[str] = set()

    def apply(self, command: Command) -> Outcome:
        if isinstance(command, Create):
            return self._create(command.new)
        if isinstance(command, Update):
            return self._update(command)
        return self._delete(command.project, command.feedback_id, command.now, command.actor)

    def _state(self, key: FeedbackKey) -> State | None:
        state = self.states.get(key)
        return self._stored.states.get(key) if state is None else state

    def _vote(self, key: VoteKey) -> str | None:
        return self.votes[key] if key in self.votes else self._stored.votes.get(key)

    def _current(self, project: str, feedback_id: str) -> State:
        state = self._state((project, feedback_id))
        if state is None or state.deleted:
            raise NotFoundError(f"feedback {feedback_id!r} not found in project {project!r}")
        return state

    def _create(self, new: NewFeedback) -> CreateOutcome:
        feedback = new.feedback
        key = (feedback.project, feedback.feedback_id)
        prior = self._state(key) if new.check_existing else None
        if prior is not None:
            if prior.deleted:
                return CreateOutcome(CreateStatus.DELETED, prior.feedback)
            status = CreateStatus.EXISTING if prior.fingerprint == new.fingerprint else CreateStatus.CONFLICT
            return CreateOutcome(status, prior.feedback)
        if is_vote(feedback):
            ballot = vote_key(feedback)
            replaced = self._vote(ballot)
            if replaced is not None:
                assert feedback.create_time is not None
                self._delete(feedback.project, replaced, feedback.create_time, feedback.created_by)
            self.votes[ballot] = feedback.feedback_id
        self.rows.append(to_row(feedback, fingerprint=new.fingerprint))
        self.states[key] = State(feedback, new.fingerprint, deleted=False)
        self.projects.add(feedback.project)
        return CreateOutcome(CreateStatus.CREATED, feedback)

    def _update(self, command: Update) -> Feedback | FeedbackServiceError:
        try:
            current = self._current(command.project, command.feedback_id)
            updated = command.change(current.feedback)
        except FeedbackServiceError as error:
            return error
        self.rows.append(to_row(updated, fingerprint=current.fingerprint, prev=current.feedback))
        self.states[(command.project, command.feedback_id)] = State(updated, current.fingerprint, deleted=False)
        self.projects.add(command.project)
        return updated

    def _delete(self, project: str, feedback_id: str, now: datetime, actor: str) -> NotFoundError | None:
        try:
            current = self._current(project, feedback_id)
        except NotFoundError as error:
            return error
        tombstone = dataclasses.replace(
            current.feedback, update_time=now, revision=current.feedback.revision + 1, updated_by=actor
        )
        self.rows.append(to_row(tombstone, fingerprint=current.fingerprint, deleted=True, prev=current.feedback))
        self.states[(project, feedback_id)] = State(tombstone, current.fingerprint, deleted=True)
        if is_vote(current.feedback):
            # A live vote is its key's current vote (unless racing replicas made a newer one).
            ballot = vote_key(current.feedback)
            if self._vote(ballot) in (feedback_id, None):
                self.votes[ballot] = None
        self.projects.add(project)
        return None
