"""The write rules of one flush, without a database: idempotent creates, conflicts, one vote per user,
updates and deletes.

The store reads the stored state a flush's commands touch (:class:`StoredState`), hands it to a
:class:`WritePlan` on its single writer, and stores the plan's revisions. Every rule lives here, so each
has unit tests that need no ClickHouse (tests/test_write_plan.py); the store keeps only the SQL.

- A create of an id that exists is a retry (EXISTING, the stored record) when its fingerprint matches,
  a CONFLICT otherwise, DELETED when the id holds a deleted feedback.
- One vote per user: a new SOURCE_USER feedback with an author replaces (deletes) that author's current
  vote on the same trace and key, whether stored or made earlier in the same flush.
- An update writes the next revision of the current feedback (NotFound when absent or deleted); a delete
  writes a tombstone revision and, for a vote, leaves its key without a current vote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from feedback_service.domain.errors import FeedbackServiceError, NotFoundError
from feedback_service.domain.model import Feedback, Source
from feedback_service.domain.ports import Change, CreateOutcome, CreateStatus, NewFeedback

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

    states: dict[FeedbackKey, State] = field(default_factory=dict)
    votes: dict[VoteKey, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Revision:
    """A row to store: the feedback, its create fingerprint, whether it is a tombstone, and the revision it
    replaces (whose contribution the aggregates take back)."""

    feedback: Feedback
    fingerprint: str
    deleted: bool = False
    replaces: Feedback | None = None


def is_vote(feedback: Feedback) -> bool:
    return feedback.source is Source.USER and bool(feedback.author)


def vote_key(feedback: Feedback) -> VoteKey:
    return (feedback.project, feedback.trace_id, feedback.key, feedback.author)


class WritePlan:
    """Applies commands in order on the stored state and its own earlier writes."""

    def __init__(self, stored: StoredState) -> None:
        self._stored = stored
        self.states: dict[FeedbackKey, State] = {}  # what this batch writes: the final state per key
        self.votes: dict[VoteKey, str | None] = {}  # vote keys this batch changes: the vote after it
        self.revisions: list[Revision] = []
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
        self.revisions.append(Revision(feedback, new.fingerprint))
        self.states[key] = State(feedback, new.fingerprint, deleted=False)
        self.projects.add(feedback.project)
        return CreateOutcome(CreateStatus.CREATED, feedback)

    def _update(self, command: Update) -> Feedback | FeedbackServiceError:
        try:
            current = self._current(command.project, command.feedback_id)
            updated = command.change(current.feedback)
        except FeedbackServiceError as error:
            return error
        self.revisions.append(Revision(updated, current.fingerprint, replaces=current.feedback))
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
        self.revisions.append(Revision(tombstone, current.fingerprint, deleted=True, replaces=current.feedback))
        self.states[(project, feedback_id)] = State(tombstone, current.fingerprint, deleted=True)
        if is_vote(current.feedback):
            # A live vote is its key's current vote (unless racing replicas made a newer one).
            ballot = vote_key(current.feedback)
            if self._vote(ballot) in (feedback_id, None):
                self.votes[ballot] = None
        self.projects.add(project)
        return None
