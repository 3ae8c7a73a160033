"""``feedback keys`` and ``feedback console-link``: client commands on the SDK, with every other command's
connection options, credentials and exit codes, against the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedback_client import FeedbackClient, FeedbackError
from feedback_client.cli.exit_codes import ExitCode
from feedback_proto.v1 import annotation_pb2
from feedback_service.config import Settings
from feedback_service.server import FeedbackServer
from tests.support import cli
from tests.support.auth import ADMIN_KEY
from tests.support.certificates import make_pki
from tests.support.cli import Done


async def feedback(server: FeedbackServer, *arguments: str, cwd: Path, env: dict[str, str] | None = None) -> Done:
    return await cli.run_feedback(f"127.0.0.1:{server.port}", *arguments, cwd=cwd, env=env)


async def test_keys_create_list_and_revoke_with_options_after_the_action(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    created = await feedback(
        server, "keys", "create", "--project", project, "--scope", "read", "--name", "dash", "--json", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    [record] = created.json_lines()
    assert (record["project"], record["scopes"], record["name"]) == (project, ["read"], "dash")
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=record["key"]) as reader:
        assert [f async for f in reader.iter_feedback()] == [], "the new key works"

    terminal = {"TTY_COMPATIBLE": "1"}
    table = await feedback(server, "keys", "list", "--project", project, cwd=tmp_path, env=terminal)
    assert table.returncode == 0, table.stderr
    lines = table.text.splitlines()
    for heading in ("key id", "project", "name", "scopes", "created (UTC)", "revoked (UTC)"):
        assert heading in lines[1], "a header row"
    [row] = [line for line in lines if record["key_id"] in line]
    created_at = datetime.fromisoformat(record["create_time"]).strftime("%Y-%m-%d %H:%M:%S")
    assert created_at in row, "the creation time"
    assert lines[-1] == "1 key"

    revoked = await feedback(server, "keys", "revoke", record["key_id"], cwd=tmp_path, env=terminal)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.text.strip() == f"revoked {record['key_id']} (dash, project {project})"
    async with FeedbackClient(f"127.0.0.1:{server.port}", api_key=record["key"]) as reader:
        with pytest.raises(FeedbackError) as refused:
            await anext(reader.iter_feedback())
        assert refused.value.code.name == "UNAUTHENTICATED"
    listed = await feedback(server, "keys", "list", "--project", project, cwd=tmp_path)
    [after] = listed.json_lines()
    assert after["revoke_time"] is not None


async def test_keys_exit_codes_are_those_of_every_client_command(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    unknown = await feedback(server, "keys", "revoke", "0000000000000000", cwd=tmp_path)
    assert unknown.returncode == ExitCode.NOT_FOUND, unknown
    assert unknown.stderr.startswith("feedback keys revoke: NOT_FOUND: ")
    no_scope = await feedback(server, "keys", "create", "--project", project, cwd=tmp_path)
    assert no_scope.returncode == ExitCode.USAGE
    assert no_scope.stderr.startswith("usage: feedback keys create")
    assert "--scope" in no_scope.last_error_line
    wrong = await feedback(
        server, "keys", "list", "--project", project, cwd=tmp_path, env={"FEEDBACK_API_KEY": "fbk_" + "0" * 16 + "_x"}
    )
    assert wrong.returncode == ExitCode.NOT_ALLOWED
    assert "(credential: $FEEDBACK_API_KEY)" in wrong.stderr


@pytest.fixture
async def tls_server(engine_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[FeedbackServer, Path]]:
    (tmp_path / "pki").mkdir()
    ca, server_pem, _ = make_pki(tmp_path / "pki")
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen=None,
        data_dir=engine_dir,
        clickhouse_database="cli_tls_tests",
        admin_key=ADMIN_KEY,
        tls_cert_file=server_pem.certificate,
        tls_key_file=server_pem.key,
    )
    running = FeedbackServer(settings)
    await running.start()
    yield running, ca.certificate
    await running.stop(grace_s=1)


async def test_keys_connect_like_every_client_command_tls_included(
    tls_server: tuple[FeedbackServer, Path], project: str, tmp_path: Path
) -> None:
    server, ca = tls_server
    key_file = tmp_path / "admin.key"
    key_file.write_text(ADMIN_KEY + "\n")
    # $FEEDBACK_TARGET, --tls/--ca-file and --api-key-file, after the action, as for send or list.
    environment = {"FEEDBACK_API_KEY": "", "FEEDBACK_PROJECT": project}
    target = f"127.0.0.1:{server.port}"
    options = ("--tls", "--ca-file", str(ca), "--api-key-file", str(key_file))
    created = await cli.run_feedback(
        target, "keys", "create", "--scope", "ingest", *options, cwd=tmp_path, env=environment
    )
    assert created.returncode == 0, created.stderr
    listed = await cli.run_feedback(target, "keys", "list", *options, cwd=tmp_path, env=environment)
    assert listed.returncode == 0, listed.stderr
    assert [key["scopes"] for key in listed.json_lines()] == [["ingest"]]
    untrusted = await cli.run_feedback(
        target, "keys", "list", "--tls", "--api-key-file", str(key_file), cwd=tmp_path, env=environment
    )
    assert untrusted.returncode == ExitCode.UNAVAILABLE, "the system roots do not trust the test CA"
    plain = await cli.run_feedback(
        target, "keys", "list", "--api-key-file", str(key_file), cwd=tmp_path, env=environment
    )
    assert plain.returncode == ExitCode.UNAVAILABLE, "no TLS: the server refuses the plain-text connection"


# ---- console-link -------------------------------------------------------------------------------


async def test_console_link_prints_the_url_of_a_link_for_one_reviewer(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    queue = await client.create_queue(
        annotation_pb2.Queue(project=project, name="v9 thumbs-down", keys=["correctness"])
    )
    terminal = await feedback(
        server,
        *("console-link", "--project", project, "--reviewer", "alice", "--queue", "v9 thumbs-down", "--ttl", "2d"),
        cwd=tmp_path,
        env={"TTY_COMPATIBLE": "1"},
    )
    assert terminal.returncode == 0, terminal.stderr
    url = terminal.text.strip()
    assert url.startswith(f"http://127.0.0.1:{server.http_port}/"), url
    assert "#link=fbc1." in url, url
    assert f"a reviewing link for alice for queue {queue.queue_id}" in terminal.stderr

    machine = await feedback(
        server, "console-link", "--project", project, "--reviewer", "lead", "--read", "--ttl", "12h", cwd=tmp_path
    )
    assert machine.returncode == 0, machine.stderr
    [link] = machine.json_lines()
    assert link["url"].endswith(f"#link={link['token']}")
    assert (link["reviewer"], link["read"], link["queue_id"]) == ("lead", True, "")
    expires = datetime.fromisoformat(link["expire_time"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=12))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("arguments", "exit_code", "said"),
    [
        (["--queue", "no such queue"], ExitCode.NOT_FOUND, "NOT_FOUND: the project has no queue"),
        (["--ttl", "31d"], ExitCode.USAGE, "--ttl: at most 30d"),
        (["--ttl", "soon"], ExitCode.USAGE, "--ttl: not a duration"),
    ],
)
async def test_console_link_refuses_what_cannot_make_a_link(
    server: FeedbackServer, project: str, tmp_path: Path, arguments: list[str], exit_code: ExitCode, said: str
) -> None:
    done = await feedback(server, "console-link", "--project", project, "--reviewer", "alice", *arguments, cwd=tmp_path)
    assert done.returncode == exit_code, done
    assert said in done.last_error_line
    assert done.stdout == ""
