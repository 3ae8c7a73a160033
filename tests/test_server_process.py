"""The real ``feedback`` command in a subprocess: restarts, SIGTERM under load, the data-dir lock,
health, reflection, ``feedback migrate`` and the command line.

Each test has its own data dir (``tmp_path``) and its own server processes,
which are killed when the test ends, passed or failed.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import descriptor_pool, field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from feedback_proto.v1 import feedback_pb2, feedback_service_pb2_grpc
from feedback_proto.v1 import feedback_service_pb2 as pb
from feedback_service.store.data_dir_lock import LOCK_FILE_NAME
from feedback_service.store.migrations import load_migrations
from tests.helpers import thumbs_up
from tests.support.auth import authorized_channel
from tests.support.server_process import ServerProcess, query_data_dir, run_cli

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub

SERVICE = "feedback.v1.FeedbackService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
KEY_SERVICE = "feedback.v1.ApiKeyService"
RPC_TIMEOUT_S = 30.0


def feedback_stub(channel: grpc.aio.Channel) -> FeedbackServiceStub:
    # The generated stub is typed as sync or async; on an aio channel it is the async one.
    return feedback_service_pb2_grpc.FeedbackServiceStub(channel)  # type: ignore[return-value]


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process on a data dir of this test's own; killed at the end whatever happened."""
    with ServerProcess(tmp_path / "data") as server:
        yield server


async def list_all(stub: FeedbackServiceStub, project: str) -> list[feedback_pb2.Feedback]:
    """Every feedback of ``project``, following next_page_token to the end."""
    found: list[feedback_pb2.Feedback] = []
    token = ""
    while True:
        page = await stub.ListFeedback(
            pb.ListFeedbackRequest(project=project, page_size=1000, page_token=token), timeout=RPC_TIMEOUT_S
        )
        found.extend(page.feedback)
        token = page.next_page_token
        if not token:
            return found


def events_named(server: ServerProcess, name: str) -> list[dict[str, object]]:
    return [event for event in server.log_events() if event.get("event") == name]


# -- data survives a restart ---------------------------------------------------------------


async def test_feedback_creates_updates_and_deletes_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    project = "restart"
    expected: dict[str, feedback_pb2.Feedback] = {}  # the last record the server returned for each id

    async with ServerProcess(data_dir) as first, first.channel() as channel:
        stub = feedback_stub(channel)

        async def create(feedback: feedback_pb2.Feedback) -> feedback_pb2.Feedback:
            response: pb.CreateFeedbackResponse = await stub.CreateFeedback(
                pb.CreateFeedbackRequest(feedback=feedback), timeout=RPC_TIMEOUT_S
            )
            expected[response.feedback.feedback_id] = response.feedback
            return response.feedback

        await create(thumbs_up(project, feedback_id="kept", comment="as sent", metadata={"app": "web"}))
        await create(thumbs_up(project, feedback_id="rescored", thumb=None, score=0.5, model="bot", model_version="v7"))
        await create(thumbs_up(project, feedback_id="relabelled", thumb=None, label="off_topic", author="rev-1"))
        generated = await create(thumbs_up(project, correction="The refund window is 30 days."))
        await create(thumbs_up(project, feedback_id="deleted", comment="to be deleted"))
        batch = await stub.BatchCreateFeedback(
            pb.BatchCreateFeedbackRequest(
                feedback=[thumbs_up(project, feedback_id=f"batch-{n:03d}", comment=f"item {n}") for n in range(50)]
            ),
            timeout=RPC_TIMEOUT_S,
        )
        assert all(result.WhichOneof("result") == "feedback" for result in batch.results)
        expected.update({result.feedback.feedback_id: result.feedback for result in batch.results})

        rescored = await stub.UpdateFeedback(
            pb.UpdateFeedbackRequest(
                feedback=feedback_pb2.Feedback(project=project, feedback_id="rescored", score=0.9),
                update_mask=field_mask_pb2.FieldMask(paths=["score"]),
            ),
            timeout=RPC_TIMEOUT_S,
        )
        relabelled = await stub.UpdateFeedback(
            pb.UpdateFeedbackRequest(
                feedback=feedback_pb2.Feedback(
                    project=project, feedback_id="relabelled", comment="second look", metadata={"round": "2"}
                )
            ),
            timeout=RPC_TIMEOUT_S,
        )
        expected["rescored"], expected["relabelled"] = rescored.feedback, relabelled.feedback
        assert (rescored.feedback.score, rescored.feedback.revision) == (0.9, 2)
        await stub.DeleteFeedback(
            pb.DeleteFeedbackRequest(project=project, feedback_id="deleted"), timeout=RPC_TIMEOUT_S
        )
        del expected["deleted"]
        assert len(await list_all(stub, project)) == len(expected) == 54

        assert await first.terminate_async() == 0
    assert events_named(first, "stopped"), first.log_text()

    async with ServerProcess(data_dir) as second, second.channel() as channel:
        stub = feedback_stub(channel)
        # The schema is already there: the restarted server applies no migration.
        assert [event["applied"] for event in events_named(second, "migrated")] == [[]]

        for feedback_id, record in expected.items():
            fetched = await stub.GetFeedback(
                pb.GetFeedbackRequest(project=project, feedback_id=feedback_id), timeout=RPC_TIMEOUT_S
            )
            assert fetched.feedback == record, feedback_id
        assert expected[generated.feedback_id].correction == "The refund window is 30 days."
        listed = await list_all(stub, project)
        assert {f.feedback_id: f for f in listed} == expected
        assert len(listed) == len(expected)

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetFeedback(pb.GetFeedbackRequest(project=project, feedback_id="deleted"), timeout=RPC_TIMEOUT_S)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # The tombstone survived too: the deleted id stays reserved.
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.CreateFeedback(
                pb.CreateFeedbackRequest(feedback=thumbs_up(project, feedback_id="deleted")), timeout=RPC_TIMEOUT_S
            )
        assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
        # Revisions continue from the stored ones.
        again = await stub.UpdateFeedback(
            pb.UpdateFeedbackRequest(feedback=feedback_pb2.Feedback(project=project, feedback_id="rescored", score=1))
        )
        assert again.feedback.revision == 3

        assert await second.terminate_async() == 0


# -- SIGTERM under load loses no acknowledged feedback -----------------------------------------

SHUTDOWN_ERRORS = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


class Burst:
    """Create load from many workers; remembers what was sent and what the server acknowledged."""

    def __init__(self, stub: FeedbackServiceStub, project: str) -> None:
        self.stub = stub
        self.project = project
        self.sent: set[str] = set()
        self.acknowledged: dict[str, feedback_pb2.Feedback] = {}
        self.acknowledged_in_batches = 0
        self.signalled = False
        self.acknowledged_after_signal = 0  # calls in flight at SIGTERM that the server still completed
        self.item_errors: list[str] = []
        self.stopped_by: collections.Counter[grpc.StatusCode] = collections.Counter()

    def feedback(self, feedback_id: str) -> feedback_pb2.Feedback:
        self.sent.add(feedback_id)
        return thumbs_up(self.project, feedback_id=feedback_id, comment=f"burst {feedback_id}")

    async def single_creates(self, worker: int) -> None:
        for n in range(1_000_000):
            feedback_id = f"s{worker:02d}-{n:06d}"
            request = pb.CreateFeedbackRequest(feedback=self.feedback(feedback_id))
            try:
                response = await self.stub.CreateFeedback(request, timeout=RPC_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                self.stopped_by[error.code()] += 1
                return
            self.acknowledged[feedback_id] = response.feedback
            self.acknowledged_after_signal += self.signalled

    async def batch_creates(self, worker: int, size: int = 100) -> None:
        for n in range(1_000_000):
            items = [self.feedback(f"b{worker:02d}-{n:05d}-{i:03d}") for i in range(size)]
            try:
                response = await self.stub.BatchCreateFeedback(
                    pb.BatchCreateFeedbackRequest(feedback=items), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                self.stopped_by[error.code()] += 1
                return
            self.acknowledged_after_signal += self.signalled
            for item, result in zip(items, response.results, strict=True):
                if result.WhichOneof("result") == "feedback":
                    self.acknowledged[item.feedback_id] = result.feedback
                    self.acknowledged_in_batches += 1
                else:
                    self.item_errors.append(f"{item.feedback_id}: {result.error}")


async def test_sigterm_during_a_burst_of_creates_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    project = "burst"
    grace_s = 5.0
    singles, batchers = 28, 4

    async with (
        ServerProcess(data_dir, extra_args=["--shutdown-grace-s", str(grace_s)]) as first,
        first.channel() as channel,
    ):
        burst = Burst(feedback_stub(channel), project)
        workers = [asyncio.create_task(burst.single_creates(w)) for w in range(singles)]
        workers += [asyncio.create_task(burst.batch_creates(w)) for w in range(batchers)]
        try:
            # About a second of load, and enough acknowledged that the check below means something.
            started = time.monotonic()
            await asyncio.sleep(1.0)
            while True:
                if len(burst.acknowledged) >= 300 or time.monotonic() - started > 20:
                    break
                await asyncio.sleep(0.05)
            assert not any(worker.done() for worker in workers), (burst.stopped_by, first.log_text())

            signalled = time.monotonic()
            first.send_signal()
            burst.signalled = True
            # Every worker ends at its first error: the server stops taking calls, then exits.
            await asyncio.wait_for(asyncio.gather(*workers), timeout=grace_s + 30)
            exit_code = await first.wait_async(timeout_s=grace_s + 30)
            stop_s = time.monotonic() - signalled
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async with ServerProcess(data_dir) as second, second.channel() as channel:
        stored = await list_all(feedback_stub(channel), project)
        assert await second.terminate_async() == 0

    # Below the API too: ListFeedback reads with FINAL, which would hide a row inserted twice.
    ((rows, distinct_ids),) = query_data_dir(
        data_dir,
        "SELECT count(), uniqExact(feedback_id) FROM feedback WHERE project = {project:String}",
        {"project": project},
    )
    copies = collections.Counter(f.feedback_id for f in stored)
    by_id = {f.feedback_id: f for f in stored}
    lost = sorted(set(burst.acknowledged) - set(by_id))
    never_sent = sorted(set(by_id) - burst.sent)
    duplicated = sorted(feedback_id for feedback_id, count in copies.items() if count > 1)
    changed = sorted(i for i, record in burst.acknowledged.items() if i in by_id and by_id[i] != record)
    report = (
        f"sent {len(burst.sent)}, acknowledged {len(burst.acknowledged)} "
        f"({len(burst.acknowledged) - burst.acknowledged_in_batches} single, {burst.acknowledged_in_batches} "
        f"in batches), {burst.acknowledged_after_signal} calls completed after SIGTERM; stored {len(stored)} "
        f"({rows} rows for {distinct_ids} ids); lost {len(lost)} {lost[:5]}, never sent {len(never_sent)} "
        f"{never_sent[:5]}, duplicated {len(duplicated)} {duplicated[:5]}, changed {len(changed)} {changed[:5]}; "
        f"workers stopped by {dict(burst.stopped_by)}; item errors {burst.item_errors[:3]}; "
        f"exit {exit_code} after {stop_s:.2f} s"
    )
    print(report)
    assert exit_code == 0, f"{report}\n{first.log_text()[-5000:]}"
    # The grace bounds the drain of in-flight calls; the flush and close after it take well under a second.
    assert stop_s < grace_s, report
    assert len(burst.acknowledged) > 100, report
    assert burst.acknowledged_in_batches > 0, report
    assert len(burst.acknowledged) > burst.acknowledged_in_batches, report
    assert not lost, report
    assert not never_sent, report
    assert not duplicated, report
    assert rows == distinct_ids == len(stored), report
    assert not changed, report
    assert not burst.item_errors, report
    assert burst.acknowledged_after_signal > 0, report
    assert sum(burst.stopped_by.values()) == singles + batchers, report
    assert set(burst.stopped_by) <= SHUTDOWN_ERRORS, report
    assert events_named(first, "shutting_down"), first.log_text()[-5000:]
    assert events_named(first, "stopped"), first.log_text()[-5000:]


# -- one process per data dir -------------------------------------------------------------


async def test_a_second_server_on_the_same_data_dir_fails_at_start(
    tmp_path: Path, running_server: ServerProcess
) -> None:
    second = ServerProcess(running_server.data_dir).launch()
    try:
        exit_code = await second.wait_async(timeout_s=60)
    finally:
        second.kill()
    assert exit_code == 1, second.log_text()
    assert "in use by another process" in second.log_text()
    assert not events_named(second, "listening"), second.log_text()

    migrate = await asyncio.to_thread(run_cli, ["migrate", "--data-dir", str(running_server.data_dir)], cwd=tmp_path)
    assert migrate.returncode == 1, migrate
    assert "in use by another process" in migrate.stderr

    # The first server was not disturbed: it still holds the dir and serves.
    assert running_server.exit_code is None
    lock_file = running_server.data_dir / LOCK_FILE_NAME
    assert lock_file.read_text().strip() == str(running_server.pid)
    async with running_server.channel() as channel:
        stub = feedback_stub(channel)
        sent = thumbs_up("lock", feedback_id="after-the-second-start")
        created = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=sent), timeout=RPC_TIMEOUT_S)
        fetched = await stub.GetFeedback(
            pb.GetFeedbackRequest(project="lock", feedback_id=sent.feedback_id), timeout=RPC_TIMEOUT_S
        )
        assert fetched.feedback == created.feedback
    assert running_server.terminate() == 0


async def test_a_second_server_on_the_same_port_fails_at_start(tmp_path: Path, running_server: ServerProcess) -> None:
    second = ServerProcess(tmp_path / "other-data", extra_args=["--listen", running_server.target]).launch()
    try:
        exit_code = await second.wait_async(timeout_s=60)
    finally:
        second.kill()
    assert exit_code == 1, second.log_text()
    assert "cannot listen on" in second.log_text()
    assert running_server.exit_code is None


# -- health and reflection ------------------------------------------------------------------


async def test_health_reports_serving_for_the_server_and_the_feedback_service(running_server: ServerProcess) -> None:
    async with running_server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=RPC_TIMEOUT_S)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services_and_describes_the_feedback_api(running_server: ServerProcess) -> None:
    with grpc.insecure_channel(running_server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == {
            SERVICE,
            HEALTH_SERVICE,
            REFLECTION_SERVICE,
            KEY_SERVICE,
            "feedback.v1.FeedbackKeyService",
            "feedback.v1.AnnotationService",
        }
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        methods = {method.name: method for method in service.methods}
        assert set(methods) == {
            "CreateFeedback",
            "BatchCreateFeedback",
            "GetFeedback",
            "ListFeedback",
            "UpdateFeedback",
            "DeleteFeedback",
            "StreamAggregates",
            "ExportFeedback",
            "CompareVersions",
            "MintFeedbackToken",
        }
        for name, method in methods.items():
            assert method.input_type.full_name == f"feedback.v1.{name}Request"
            assert method.output_type.full_name == f"feedback.v1.{name}Response"
        # What reflection serves is the schema this client was generated from.
        reflected = pool.FindMessageTypeByName("feedback.v1.Feedback")
        local = feedback_pb2.Feedback.DESCRIPTOR
        assert [(f.name, f.number) for f in reflected.fields] == [(f.name, f.number) for f in local.fields]


# -- the command line -----------------------------------------------------------------------


def test_migrate_applies_the_schema_once_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = run_cli(["migrate", "--data-dir", str(data_dir)], cwd=tmp_path)
    second = run_cli(["migrate", "--data-dir", str(data_dir)], cwd=tmp_path)
    assert (first.returncode, second.returncode) == (0, 0), (first, second)
    applied = ", ".join(m.name for m in load_migrations())
    assert first.stdout.strip() == f"migrated embedded:{data_dir.resolve()}: {applied}", first
    up_to_date = f"migrated embedded:{data_dir.resolve()}: nothing to apply, already up to date"
    assert second.stdout.strip() == up_to_date, second


@pytest.mark.parametrize(
    ("arguments", "env", "named"),
    [
        (["serve", "--db-threads", "0"], {}, "--db-threads"),
        (["serve", "--db-threads", "four"], {}, "--db-threads"),
        (["serve", "--log-level", "loud"], {}, "--log-level"),
        (["serve"], {"FEEDBACK_CLICKHOUSE_URL": "ftp://x"}, "FEEDBACK_CLICKHOUSE_URL"),
        (["migrate"], {"FEEDBACK_SHUTDOWN_GRACE_S": "-1"}, "FEEDBACK_SHUTDOWN_GRACE_S"),
        (["serve", "--no-such-flag"], {}, "--no-such-flag"),
        (["serve", "--clickhouse-database", "bad-name"], {}, "--clickhouse-database"),
        (["serve"], {"FEEDBACK_CLICKHOUSE_DATABASE": "x;y"}, "FEEDBACK_CLICKHOUSE_DATABASE"),
    ],
)
def test_the_cli_refuses_a_bad_setting_with_exit_code_2_naming_it(
    tmp_path: Path, arguments: list[str], env: dict[str, str], named: str
) -> None:
    data_dir = tmp_path / "data"
    done = run_cli([*arguments, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)], cwd=tmp_path, env=env)
    assert done.returncode == 2, done
    assert "usage:" in done.stderr
    assert named in done.stderr.splitlines()[-1], done.stderr
    assert not data_dir.exists(), "a refused command must not touch storage"
    if arguments[0] == "serve" and "--no-such-flag" not in arguments:
        assert done.stderr.startswith("usage: feedback serve"), "the usage shown is the command's own"


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        ("serve", {"FEEDBACK_LISTEN": "not-a-host-port"}, "FEEDBACK_LISTEN"),
        ("serve", {"FEEDBACK_LISTEN": "127.0.0.1:65536"}, "FEEDBACK_LISTEN"),
        ("serve", {"FEEDBACK_LISTEN": ":50051"}, "FEEDBACK_LISTEN"),
        ("serve", {"FEEDBACK_METRICS_LISTEN": "127.0.0.1:99999"}, "FEEDBACK_METRICS_LISTEN"),
        ("serve", {"FEEDBACK_METRICS_LISTEN": "not-a-host-port"}, "FEEDBACK_METRICS_LISTEN"),
        ("serve", {"FEEDBACK_HTTP_LISTEN": "localhost:http"}, "FEEDBACK_HTTP_LISTEN"),
        (
            "migrate",
            {"FEEDBACK_CLICKHOUSE_URL": "http://127.0.0.1:1", "FEEDBACK_CLICKHOUSE_CLUSTER": "clüster"},
            "FEEDBACK_CLICKHOUSE_CLUSTER",
        ),
    ],
)
def test_bad_listen_addresses_and_cluster_names_exit_2_naming_the_variable(
    tmp_path: Path, command: str, env: dict[str, str], named: str
) -> None:
    # The variables alone (no --listen flag, which would win over FEEDBACK_LISTEN).
    data_dir = tmp_path / "data"
    done = run_cli([command], cwd=tmp_path, env={"FEEDBACK_DATA_DIR": str(data_dir), **env})
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"usage: feedback {command}"), done.stderr
    assert named in done.stderr.splitlines()[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert not data_dir.exists(), "a refused command must not touch storage"


@pytest.mark.parametrize("arguments", [["--help"], ["serve", "--help"], ["migrate", "--help"]])
def test_help_exits_0_and_shows_examples(tmp_path: Path, arguments: list[str]) -> None:
    done = run_cli(arguments, cwd=tmp_path)
    assert done.returncode == 0, done
    assert "examples:" in done.stdout
    assert "feedback serve --listen 0.0.0.0:50051 --data-dir /var/lib/feedback" in done.stdout
    assert "FEEDBACK_CLICKHOUSE_URL=https://user:pass@host:8443 feedback migrate" in done.stdout
    if arguments != ["--help"]:
        assert "--db-threads" in done.stdout
        assert "FEEDBACK_DB_THREADS" in done.stdout


# -- keys and the local admin key ----------------------------------------------------------------


async def test_first_start_creates_a_local_admin_key_and_prints_it_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with ServerProcess(data_dir, env={"FEEDBACK_ADMIN_KEY": ""}) as first:
        key_file = data_dir / "admin.key"
        key = key_file.read_text().strip()
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert "Created the local admin key" in first.log_text()
        assert key in first.log_text()
        async with authorized_channel(first.target, key) as channel:
            stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
            await stub.ListFeedback(pb.ListFeedbackRequest(project="local"), timeout=RPC_TIMEOUT_S)
        assert first.terminate() == 0
    with ServerProcess(data_dir, env={"FEEDBACK_ADMIN_KEY": ""}) as second:
        assert key_file.read_text().strip() == key
        assert key not in second.log_text(), "the key is printed only when it is created"


# -- SIGKILL under load: no graceful shutdown, still no acknowledged feedback lost ----------------


class KilledBurst:
    """Create load that remembers every payload and every call left unanswered, to resend them as sent."""

    def __init__(self, stub: FeedbackServiceStub, project: str) -> None:
        self.stub = stub
        self.project = project
        self.payloads: dict[str, feedback_pb2.Feedback] = {}  # every item ever sent, by id
        self.acknowledged: dict[str, feedback_pb2.Feedback] = {}
        self.acknowledged_in_batches = 0
        self.unanswered_singles: list[feedback_pb2.Feedback] = []  # the create each single worker died on
        self.unanswered_batches: list[list[feedback_pb2.Feedback]] = []  # likewise, whole batches
        self.item_errors: list[str] = []
        self.stopped_by: collections.Counter[grpc.StatusCode] = collections.Counter()

    def feedback(self, feedback_id: str) -> feedback_pb2.Feedback:
        sent = thumbs_up(self.project, feedback_id=feedback_id, comment=f"kill {feedback_id}")
        self.payloads[feedback_id] = sent
        return sent

    async def single_creates(self, worker: int) -> None:
        for n in range(1_000_000):
            sent = self.feedback(f"s{worker:02d}-{n:06d}")
            try:
                response = await self.stub.CreateFeedback(
                    pb.CreateFeedbackRequest(feedback=sent), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                self.stopped_by[error.code()] += 1
                self.unanswered_singles.append(sent)
                return
            self.acknowledged[sent.feedback_id] = response.feedback

    async def batch_creates(self, worker: int, size: int = 100) -> None:
        for n in range(1_000_000):
            items = [self.feedback(f"b{worker:02d}-{n:05d}-{i:03d}") for i in range(size)]
            try:
                response = await self.stub.BatchCreateFeedback(
                    pb.BatchCreateFeedbackRequest(feedback=items), timeout=RPC_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                self.stopped_by[error.code()] += 1
                self.unanswered_batches.append(items)
                return
            for item, result in zip(items, response.results, strict=True):
                if result.WhichOneof("result") == "feedback":
                    self.acknowledged[item.feedback_id] = result.feedback
                    self.acknowledged_in_batches += 1
                else:
                    self.item_errors.append(f"{item.feedback_id}: {result.error}")

    @property
    def unanswered_ids(self) -> set[str]:
        return {f.feedback_id for f in self.unanswered_singles} | {
            f.feedback_id for items in self.unanswered_batches for f in items
        }


async def test_sigkill_during_ingest_loses_no_acknowledged_feedback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    project = "sigkill"
    singles, batchers = 24, 4
    count_sql = "SELECT count(), uniqExact(feedback_id) FROM feedback WHERE project = {project:String}"

    async with ServerProcess(data_dir) as first, first.channel() as channel:
        burst = KilledBurst(feedback_stub(channel), project)
        workers = [asyncio.create_task(burst.single_creates(w)) for w in range(singles)]
        workers += [asyncio.create_task(burst.batch_creates(w)) for w in range(batchers)]
        try:
            started = time.monotonic()
            await asyncio.sleep(1.0)
            while True:
                if len(burst.acknowledged) >= 300 or time.monotonic() - started > 20:
                    break
                await asyncio.sleep(0.05)
            assert not any(worker.done() for worker in workers), (burst.stopped_by, first.log_text()[-5000:])
            # No SIGTERM, no drain, no flush: the process is gone between two instructions.
            first.kill()
            killed_exit = first.exit_code
            await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    assert killed_exit == -signal.SIGKILL, first.log_text()[-5000:]
    assert not events_named(first, "shutting_down"), "SIGKILL must leave no chance to shut down"

    # What the killed process left on disk, read below the API (no FINAL) before anything else opens it.
    ((rows_after_kill, ids_after_kill),) = query_data_dir(data_dir, count_sql, {"project": project})

    unanswered = burst.unanswered_ids
    async with ServerProcess(data_dir) as second, second.channel() as channel:
        stub = feedback_stub(channel)
        after_kill = await list_all(stub, project)

        # Resend every unanswered call exactly as it was sent: same ids, same payloads.
        retried: dict[str, feedback_pb2.Feedback] = {}
        retry_errors: list[str] = []

        async def resend_single(sent: feedback_pb2.Feedback) -> None:
            response = await stub.CreateFeedback(pb.CreateFeedbackRequest(feedback=sent), timeout=RPC_TIMEOUT_S)
            retried[sent.feedback_id] = response.feedback

        async def resend_batch(items: list[feedback_pb2.Feedback]) -> None:
            response = await stub.BatchCreateFeedback(
                pb.BatchCreateFeedbackRequest(feedback=items), timeout=RPC_TIMEOUT_S
            )
            for item, result in zip(items, response.results, strict=True):
                if result.WhichOneof("result") == "feedback":
                    retried[item.feedback_id] = result.feedback
                else:
                    retry_errors.append(f"{item.feedback_id}: {result.error}")

        await asyncio.gather(
            *(resend_single(sent) for sent in burst.unanswered_singles),
            *(resend_batch(items) for items in burst.unanswered_batches),
        )
        final = await list_all(stub, project)
        assert await second.terminate_async() == 0
    ((final_rows, final_ids),) = query_data_dir(data_dir, count_sql, {"project": project})

    by_id = {f.feedback_id: f for f in after_kill}
    copies = collections.Counter(f.feedback_id for f in after_kill)
    lost = sorted(set(burst.acknowledged) - set(by_id))
    never_sent = sorted(set(by_id) - set(burst.payloads))
    duplicated = sorted(i for i, n in copies.items() if n > 1)
    changed = sorted(i for i, record in burst.acknowledged.items() if i in by_id and by_id[i] != record)
    landed_unanswered = sorted(set(by_id) & unanswered)
    # A retry of a create that landed before the kill must return that record, not store another.
    retry_changed = sorted(i for i in landed_unanswered if retried.get(i) != by_id[i])
    final_copies = collections.Counter(f.feedback_id for f in final)
    final_by_id = {f.feedback_id: f for f in final}
    final_changed = sorted(i for i, record in {**by_id, **retried}.items() if final_by_id.get(i) != record)
    report = (
        f"sent {len(burst.payloads)}, acknowledged {len(burst.acknowledged)} "
        f"({len(burst.acknowledged) - burst.acknowledged_in_batches} single, {burst.acknowledged_in_batches} "
        f"in batches); unanswered at the kill: {len(burst.unanswered_singles)} creates and "
        f"{len(burst.unanswered_batches)} batches ({len(unanswered)} items), of which {len(landed_unanswered)} "
        f"were stored anyway; after the kill: {len(after_kill)} listed, {rows_after_kill} rows for "
        f"{ids_after_kill} ids; lost {len(lost)} {lost[:5]}, never sent {len(never_sent)} {never_sent[:5]}, "
        f"duplicated {len(duplicated)} {duplicated[:5]}, changed {len(changed)} {changed[:5]}; "
        f"retried {len(retried)} (errors {retry_errors[:3]}, changed {retry_changed[:5]}); "
        f"final: {len(final)} listed, {final_rows} rows for {final_ids} ids, changed {final_changed[:5]}; "
        f"workers stopped by {dict(burst.stopped_by)}; item errors {burst.item_errors[:3]}"
    )
    print(report)
    # The bookkeeping itself: every item sent was either acknowledged or in a call left unanswered.
    assert set(burst.payloads) == set(burst.acknowledged) | unanswered, report
    assert not set(burst.acknowledged) & unanswered, report
    assert sum(burst.stopped_by.values()) == singles + batchers, report
    assert set(burst.stopped_by) <= SHUTDOWN_ERRORS, report
    assert not burst.item_errors, report
    assert len(burst.acknowledged) > 100, report
    assert 0 < burst.acknowledged_in_batches < len(burst.acknowledged), report
    # After SIGKILL and a restart: every acknowledged feedback exactly once, as acknowledged; nothing invented.
    assert not lost, report
    assert not never_sent, report
    assert not duplicated, report
    assert not changed, report
    assert rows_after_kill == ids_after_kill == len(after_kill), report
    # Retrying what got no answer, as sent, completes the set: each item exactly once, none refused.
    assert not retry_errors, report
    assert set(retried) == unanswered, report
    assert not retry_changed, report
    assert set(final_copies) == set(burst.payloads), report
    assert max(final_copies.values()) == 1, report
    assert final_rows == final_ids == len(burst.payloads), report
    assert not final_changed, report
    for feedback_id, record in retried.items():
        sent = burst.payloads[feedback_id]
        assert (record.comment, record.trace_id, record.revision) == (sent.comment, sent.trace_id, 1), report
