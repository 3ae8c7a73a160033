"""The client commands (send, list, tail, export, compare): the real ``feedback`` CLI against the real server.

Every test runs ``python -m feedback_service ...`` as a subprocess (tests/support/cli.py), asynchronously:
the server runs on this process's event loop, which must keep serving while the CLI talks to it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib
import json
import math
import os
import re
import signal
import time
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import ParseDict

from feedback_client import FeedbackClient, FeedbackError, comment, correct, label, score, thumbs_down, thumbs_up
from feedback_client.cli import tail
from feedback_client.cli.command import ENTRY_POINT_GROUP, ExternalCommand
from feedback_client.cli.commands import CLIENT_COMMANDS
from feedback_client.cli.connection import FILE_NAME as LOCAL_ADMIN_KEY_FILE
from feedback_client.cli.exit_codes import EXIT_CODES_HELP, MEANINGS, ExitCode, exit_code_for
from feedback_client.cli.filters import parse_time
from feedback_proto.v1 import aggregates_pb2, feedback_pb2, feedback_service_pb2
from feedback_proto.v1 import api_keys_pb2 as keys_pb
from feedback_service.local_admin_key import FILE_NAME
from feedback_service.server import FeedbackServer
from tests.support import cli
from tests.support.auth import ADMIN_KEY
from tests.support.cli import CLI_TIMEOUT_S, Done
from tests.support.ports import free_port


async def start_cli(
    server: FeedbackServer, *arguments: str, cwd: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    return await cli.start_cli(f"127.0.0.1:{server.port}", *arguments, cwd=cwd, env=env)


async def feedback_cli(server: FeedbackServer, *arguments: str, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """Run ``feedback *arguments`` against the session server to completion."""
    return await cli.run_feedback(f"127.0.0.1:{server.port}", *arguments, cwd=cwd, env=env)


async def _store(client: FeedbackClient, items: list[feedback_pb2.Feedback]) -> list[feedback_pb2.Feedback]:
    stored: list[feedback_pb2.Feedback] = []
    for start in range(0, len(items), 1000):
        for result in await client.batch_create(items[start : start + 1000]):
            assert not isinstance(result, FeedbackError), result
            stored.append(result)
    return stored


async def _exported(client: FeedbackClient, project: str) -> list[feedback_pb2.Feedback]:
    """Everything of ``project`` in export order, through the SDK: what the CLI's file must hold."""
    request = feedback_service_pb2.ExportFeedbackRequest(filter=aggregates_pb2.AggregateFilter(project=project))
    return [feedback async for chunk in client.export(request) for feedback in chunk.feedback]


# ---- send and list ------------------------------------------------------------------------------


async def test_send_stores_feedback_and_list_json_shows_it(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    trace = uuid.uuid4().hex
    vote = await feedback_cli(
        server,
        *("send", "--project", project, "--trace-id", trace, "--thumb", "down", "--model", "bot"),
        *("--model-version", "v2", "--author", "user-7", "--metadata", "app=web", "--metadata", "locale=de"),
        cwd=tmp_path,
    )
    assert vote.returncode == 0, vote.stderr
    [sent_vote] = vote.json_lines()
    assert (sent_vote["key"], sent_vote["thumb"], sent_vote["source"]) == ("thumbs", "THUMB_DOWN", "SOURCE_USER")
    assert sent_vote["metadata"] == {"app": "web", "locale": "de"}
    review = await feedback_cli(
        server,
        *("send", "--project", project, "--trace-id", trace, "--key", "helpfulness", "--score", "4.5"),
        *("--source", "reviewer", "--comment", "right, but long", "--correction", "Shorter.", "--feedback-id", "r-1"),
        cwd=tmp_path,
    )
    assert review.returncode == 0, review.stderr

    listed = await feedback_cli(server, "list", "--project", project, "--trace-id", trace, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    records = listed.json_lines()
    assert [r["feedback_id"] for r in records] == ["r-1", sent_vote["feedback_id"]], "newest first"
    assert records[1] == sent_vote, "list prints the record as send printed it"
    review_fields = ("score", "comment", "correction", "source")
    assert [records[0][name] for name in review_fields] == [4.5, "right, but long", "Shorter.", "SOURCE_REVIEWER"]


async def test_on_a_terminal_send_prints_the_id_and_list_a_table(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    terminal = {"TTY_COMPATIBLE": "1"}
    sent = await feedback_cli(
        server,
        *("send", "--project", project, "--trace-id", "trace-a", "--key", "topic", "--label", "billing"),
        *("--model", "bot", "--model-version", "v1", "--comment", "asked about an invoice " * 5),
        cwd=tmp_path,
        env=terminal,
    )
    assert sent.returncode == 0, sent.stderr
    feedback_id = sent.stdout.strip()
    assert (await client.get(feedback_id, project=project)).label == "billing"
    await _store(client, [thumbs_up(f"trace-{i}", project=project) for i in range(3)])
    await client.create(correct("trace-c", project=project, key="answer", correction="[b]30 days[/b]"))

    listed = await feedback_cli(
        server, "list", "--project", project, "--limit", "2", "--wide", cwd=tmp_path, env=terminal
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.text.splitlines()
    assert all(heading in lines[1] for heading in ("time (UTC)", "feedback id", "model@version", "comment"))
    assert "2 shown; more match" in lines[-1]
    everything = await feedback_cli(
        server, "list", "--project", project, "--limit", "0", "--wide", cwd=tmp_path, env=terminal
    )
    [row] = [line for line in everything.text.splitlines() if "billing" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[1:] == [
        feedback_id,
        "trace-a",
        "bot@v1",
        "topic",
        "billing",
        "",
        "",
        "asked about an invoice asked about an i…",
    ]
    assert "│ [correction] [b]30 days[/b] " in everything.text, "values are shown as they are, never as markup"
    assert everything.text.splitlines()[-1] == "5 shown"


async def test_list_filters_and_limits(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    items = [thumbs_up(f"t{i}", project=project, model="bot", model_version=f"v{i % 2}") for i in range(7)]
    items.append(score("t9", project=project, key="quality", value=0.5, source=feedback_pb2.SOURCE_AUTOMATED))
    await _store(client, items)

    async def ids(*arguments: str) -> list[str]:
        done = await feedback_cli(server, "list", "--project", project, *arguments, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return [record["trace_id"] for record in done.json_lines()]

    assert sorted(await ids("--model-version", "v1")) == ["t1", "t3", "t5"]
    assert await ids("--source", "automated") == ["t9"]
    assert len(await ids("--limit", "3")) == 3
    assert len(await ids("--since", "1h")) == 8
    assert await ids("--until", "2000-01-01T00:00:00Z") == []


async def test_list_fits_an_80_column_terminal_and_wide_shows_every_column(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    await client.create(
        correct(
            trace,
            project=project,
            key="helpfulness",
            model="support-bot",
            model_version="v8",
            correction="The refund window is 30 days, not 14, for every order placed online.",
        )
    )
    narrow = {"TTY_COMPATIBLE": "1", "COLUMNS": "80"}
    listed = await feedback_cli(server, "list", "--project", project, cwd=tmp_path, env=narrow)
    assert listed.returncode == 0, listed.stderr
    lines = listed.text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, listed.text
    assert lines[0].split() == ["time", "(UTC)", "trace", "model@version", "key", "value", "comment"], "a header row"
    [row] = [line for line in lines if "support-bot@v8" in line]
    assert "4bf92f35…" in row, "the trace id shortened"
    assert "helpfulness" in row
    assert "→ The refund" in row, "the correction when there is no comment"
    assert row.rstrip().endswith("…"), "the comment cut to the width left"

    wide = await feedback_cli(server, "list", "--project", project, "--wide", cwd=tmp_path, env={"TTY_COMPATIBLE": "1"})
    assert wide.returncode == 0, wide.stderr
    for heading in ("feedback id", "source", "author"):
        assert heading in wide.text
    assert trace in wide.text, "the whole trace id"


@pytest.mark.parametrize(
    ("arguments", "exit_code", "named"),
    [
        (["--key", "quality", "--score", "nan"], ExitCode.REFUSED, "feedback.score"),
        (["--key", "Not A Key", "--thumb", "up"], ExitCode.REFUSED, "feedback.key"),
        (["--score", "3"], ExitCode.USAGE, "--key"),
        ([], ExitCode.USAGE, "--thumb, --score or --label"),
        (["--thumb", "sideways"], ExitCode.USAGE, "--thumb"),
        (["--thumb", "up", "--score", "1"], ExitCode.USAGE, "--score"),
        (["--thumb", "up", "--metadata", "no-equals-sign"], ExitCode.USAGE, "--metadata"),
        (["--key", "quality", "--score", "high"], ExitCode.USAGE, "--score"),
    ],
)
async def test_send_refuses_bad_input_with_its_exit_code_naming_the_field(
    client: FeedbackClient,
    server: FeedbackServer,
    project: str,
    tmp_path: Path,
    arguments: list[str],
    exit_code: ExitCode,
    named: str,
) -> None:
    done = await feedback_cli(server, "send", "--project", project, "--trace-id", "t", *arguments, cwd=tmp_path)
    assert done.returncode == exit_code, done
    assert done.stdout == ""
    if exit_code == ExitCode.REFUSED:
        assert done.stderr.startswith("feedback send: INVALID_ARGUMENT: invalid request\n")
        assert f"\n  {named}: " in done.stderr, "one line per field violation"
        assert done.stderr.count(named) == 1, "a refusal is printed once"
    else:
        assert "usage: feedback send" in done.stderr
        assert named in done.stderr.splitlines()[-1]
    assert [f async for f in client.iter_feedback(feedback_service_pb2.ListFeedbackRequest(project=project))] == []


# ---- connection, credentials and exit codes -------------------------------------------------------


async def test_an_unreachable_server_exits_6(server: FeedbackServer, project: str, tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    done = await feedback_cli(server, "list", "--project", project, "--target", target, cwd=tmp_path)
    assert done.returncode == ExitCode.UNAVAILABLE, done
    assert done.stderr.startswith("feedback list: UNAVAILABLE: ")
    assert f"(target: {target})" in done.stderr


async def test_a_wrong_key_exits_5_and_says_where_the_key_came_from(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    wrong = {"FEEDBACK_API_KEY": "fbk_0000000000000000_" + "x" * 43}
    done = await feedback_cli(server, "list", "--project", project, cwd=tmp_path, env=wrong)
    assert done.returncode == ExitCode.NOT_ALLOWED, done
    assert done.stderr.startswith("feedback list: UNAUTHENTICATED: ")
    assert "(credential: $FEEDBACK_API_KEY)" in done.stderr


async def test_a_key_without_the_scope_exits_5(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    created = await client.create_api_key(
        keys_pb.CreateApiKeyRequest(project=project, name="reader", scopes=[keys_pb.SCOPE_READ])
    )
    reader = {"FEEDBACK_API_KEY": created.key}
    send = await feedback_cli(server, "send", "--trace-id", "t", "--thumb", "up", cwd=tmp_path, env=reader)
    assert send.returncode == ExitCode.NOT_ALLOWED, send
    assert send.stderr.startswith("feedback send: PERMISSION_DENIED: ")
    listed = await feedback_cli(server, "list", cwd=tmp_path, env=reader)
    assert (listed.returncode, listed.stdout) == (0, ""), "a project key implies its project"


async def test_credentials_come_from_the_key_file_then_the_environment_then_the_local_admin_key(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ADMIN_KEY + "\n")
    wrong = {"FEEDBACK_API_KEY": "fbk_0000000000000000_" + "x" * 43}
    listing = ("list", "--project", project)
    from_file = await feedback_cli(server, *listing, "--api-key-file", str(key_file), cwd=tmp_path, env=wrong)
    assert from_file.returncode == 0, from_file.stderr
    admin_env = {"FEEDBACK_API_KEY": "", "FEEDBACK_ADMIN_KEY": ADMIN_KEY}
    assert (await feedback_cli(server, *listing, cwd=tmp_path, env=admin_env)).returncode == 0

    nothing = {"FEEDBACK_API_KEY": ""}
    without = await feedback_cli(server, *listing, cwd=tmp_path, env=nothing)
    assert without.returncode == ExitCode.NOT_ALLOWED
    assert "(credential: none (no --api-key-file" in without.stderr
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin.key").write_text(ADMIN_KEY + "\n")
    assert (await feedback_cli(server, *listing, cwd=tmp_path, env=nothing)).returncode == 0, "./data/admin.key"
    elsewhere = await feedback_cli(server, *listing, "--data-dir", str(tmp_path / "no"), cwd=tmp_path, env=nothing)
    assert elsewhere.returncode == ExitCode.NOT_ALLOWED

    missing = await feedback_cli(server, *listing, "--api-key-file", str(tmp_path / "absent"), cwd=tmp_path)
    assert missing.returncode == ExitCode.USAGE
    assert "--api-key-file" in missing.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    "arguments",
    [
        ["send", "--trace-id", "t", "--thumb", "up"],
        ["list"],
        ["tail", "--no-follow"],
        ["export", "--output", "out.jsonl"],
        ["compare", "--model", "bot", "--version-a", "v1", "--version-b", "v2"],
        ["keys", "create", "--scope", "read"],
        ["keys", "list"],
        ["console-link", "--reviewer", "alice"],
    ],
)
async def test_a_missing_project_is_a_usage_error_naming_the_option_before_any_call(
    tmp_path: Path, arguments: list[str]
) -> None:
    # Nothing listens on the target: a call would exit 6, not 2.
    done = await cli.run_feedback(f"127.0.0.1:{free_port()}", *arguments, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done
    assert done.stderr.startswith(f"usage: feedback {' '.join(a for a in arguments[:2] if not a.startswith('-'))}")
    assert "--project is required (or $FEEDBACK_PROJECT)" in done.last_error_line
    assert not (tmp_path / "out.jsonl").exists(), "nothing was written"


async def test_feedback_project_names_the_project_and_a_project_key_implies_its_own(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await client.create(thumbs_up("t1", project=project))
    from_environment = await feedback_cli(server, "list", cwd=tmp_path, env={"FEEDBACK_PROJECT": project})
    assert from_environment.returncode == 0, from_environment.stderr
    assert [record["trace_id"] for record in from_environment.json_lines()] == ["t1"]
    created = await client.create_api_key(
        keys_pb.CreateApiKeyRequest(project=project, name="reader", scopes=[keys_pb.SCOPE_READ])
    )
    with_project_key = await feedback_cli(server, "list", cwd=tmp_path, env={"FEEDBACK_API_KEY": created.key})
    assert with_project_key.returncode == 0, with_project_key.stderr
    assert [record["trace_id"] for record in with_project_key.json_lines()] == ["t1"]


@pytest.mark.parametrize(
    ("arguments", "usage"),
    [
        (["list", "--project", "p", "--bogus"], "usage: feedback list "),
        (["export", "--bogus", "-o", "x.csv"], "usage: feedback export "),
        (["keys", "list", "--bogus"], "usage: feedback keys list "),
        (["keys", "revoke", "0123456789abcdef", "--bogus"], "usage: feedback keys revoke "),
    ],
)
async def test_an_unknown_option_shows_the_usage_of_its_command(
    server: FeedbackServer, tmp_path: Path, arguments: list[str], usage: str
) -> None:
    done = await feedback_cli(server, *arguments, cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done
    assert done.stderr.startswith(usage), done.stderr
    assert done.last_error_line.endswith("error: unrecognized arguments: --bogus")


def test_times_are_iso_8601_or_a_duration_ago_in_whole_minutes() -> None:
    now = datetime(2026, 11, 26, 14, 12, 41, 5, tzinfo=UTC)
    assert parse_time("2h", now=now) == datetime(2026, 11, 26, 12, 12, tzinfo=UTC)
    assert parse_time("7d", now=now) == datetime(2026, 11, 19, 14, 12, tzinfo=UTC)
    assert parse_time("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC), "no offset means UTC"
    assert parse_time("2026-11-01T10:00:00+02:00") == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_time("2026-11-01T10:00:00Z") == datetime(2026, 11, 1, 10, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday")


def test_every_exit_code_is_in_the_table_and_every_refusal_has_one() -> None:
    for code in ExitCode:
        assert f"\n  {code.value:<4} " in EXIT_CODES_HELP, code
    assert exit_code_for(grpc.StatusCode.INVALID_ARGUMENT) == ExitCode.REFUSED
    assert exit_code_for(grpc.StatusCode.ALREADY_EXISTS) == ExitCode.REFUSED
    assert exit_code_for(grpc.StatusCode.NOT_FOUND) == ExitCode.NOT_FOUND
    assert exit_code_for(grpc.StatusCode.PERMISSION_DENIED) == ExitCode.NOT_ALLOWED
    assert exit_code_for(grpc.StatusCode.RESOURCE_EXHAUSTED) == ExitCode.UNAVAILABLE
    assert exit_code_for(grpc.StatusCode.INTERNAL) == ExitCode.FAILURE


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["list", "--since", "2026-11-02", "--until", "2026-11-01"], "--until"),
        (["list", "--since", "yesterday"], "--since"),
        (["list", "--limit", "-1"], "--limit"),
        (["tail", "--group-by", "model,colour"], "--group-by"),
        (["tail", "--group-by", "key,key"], "--group-by"),
        (["tail", "--bucket", "week"], "--bucket"),
        (["export", "--output", "out.txt"], "--format"),
        (["export", "--output", "out.csv", "--chunk-size", "0"], "--chunk-size"),
        (["compare", "--model", "bot", "--version-a", "v1"], "--version-b"),
        (["send", "--trace-id", "t", "--thumb", "up", "--cert-file", "c.pem"], "--key-file"),
        (["list", "--timeout", "0"], "--timeout"),
    ],
)
async def test_bad_arguments_exit_2_naming_the_option(
    server: FeedbackServer, tmp_path: Path, arguments: list[str], named: str
) -> None:
    done = await feedback_cli(server, *arguments, "--project", "demo", cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done
    assert done.stderr.startswith(f"usage: feedback {arguments[0]}")
    assert named in done.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("send", "feedback send --project demo --trace-id 4bf92f3577b34da6a3ce929d0e0e4736 --thumb up"),
        ("list", "feedback list --project demo --model support-bot --model-version v8 --key thumbs --since 2h"),
        ("tail", "feedback tail --project demo --model support-bot --group-by model_version,key"),
        ("export", "feedback export --project demo --output feedback.jsonl --resume"),
        ("compare", "feedback compare --project demo --model support-bot --version-a v7 --version-b v8"),
    ],
)
async def test_help_of_each_command_exits_0_with_examples_and_exit_codes(
    server: FeedbackServer, tmp_path: Path, command: str, example: str
) -> None:
    done = await feedback_cli(server, command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done
    assert "examples:" in done.stdout
    assert example in done.stdout
    assert "FEEDBACK_API_KEY" in done.stdout
    assert "3    the server refused the input" in done.stdout


async def test_top_level_help_lists_the_client_commands_and_the_exit_codes(
    server: FeedbackServer, tmp_path: Path
) -> None:
    done = await feedback_cli(server, "--help", cwd=tmp_path)
    assert done.returncode == 0, done
    for command in ("send", "list", "tail", "export", "compare", "keys", "console-link", "serve", "migrate", "verify"):
        assert re.search(rf"\n    {command}\s", done.stdout), command
    assert EXIT_CODES_HELP in done.stdout


# ---- export ---------------------------------------------------------------------------------------


def _varied(project: str, count: int) -> list[feedback_pb2.Feedback]:
    """Feedback of every kind: thumbs, scores, labels, comments, corrections, metadata, sources."""
    makers = [
        lambda i: thumbs_up(f"t{i}", project=project, model="bot", model_version="v1", author=f"u{i}"),
        lambda i: thumbs_down(f"t{i}", project=project, model="bot", model_version="v2", metadata={"app": "web"}),
        lambda i: score(f"t{i}", project=project, key="quality", value=i / 4, source=feedback_pb2.SOURCE_AUTOMATED),
        lambda i: label(f"t{i}", project=project, key="topic", value=f"topic-{i}", comment='why, "quoted"\nnewline'),
        lambda i: comment(f"t{i}", project=project, text=f"comment {i}", metadata={"a": "1", "b": "ä"}),
        lambda i: correct(
            f"t{i}", project=project, correction=f"right answer {i}", source=feedback_pb2.SOURCE_REVIEWER
        ),
    ]
    return [makers[i % len(makers)](i) for i in range(count)]


_SOURCES = {
    feedback_pb2.SOURCE_UNSPECIFIED: "",
    feedback_pb2.SOURCE_USER: "user",
    feedback_pb2.SOURCE_REVIEWER: "reviewer",
    feedback_pb2.SOURCE_AUTOMATED: "automated",
}


def _read_jsonl(path: Path) -> list[feedback_pb2.Feedback]:
    return [ParseDict(json.loads(line), feedback_pb2.Feedback()) for line in path.read_text().splitlines()]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    parquet = importlib.import_module("pyarrow.parquet")
    rows: list[dict[str, Any]] = parquet.read_table(path).to_pylist()
    return rows


def _ids(path: Path, file_format: str) -> list[str]:
    if file_format == "jsonl":
        return [f.feedback_id for f in _read_jsonl(path)]
    rows = _read_csv(path) if file_format == "csv" else _read_parquet(path)
    return [row["feedback_id"] for row in rows]


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
async def test_export_writes_every_record_in_order_and_reads_back(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path, file_format: str
) -> None:
    await _store(client, _varied(project, 30))
    expected = await _exported(client, project)
    output = tmp_path / f"feedback.{file_format}"
    done = await feedback_cli(
        server, "export", "--project", project, "--output", str(output), "--chunk-size", "7", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    [summary] = done.json_lines()
    assert (summary["records"], summary["records_this_run"], summary["format"]) == (30, 30, file_format)
    assert not (tmp_path / f"feedback.{file_format}.cursor").exists(), "a finished export removes its state"
    assert not (tmp_path / f"feedback.{file_format}.parts").exists()
    assert _ids(output, file_format) == [f.feedback_id for f in expected]

    by_id = {f.feedback_id: f for f in expected}
    if file_format == "jsonl":
        assert _read_jsonl(output) == expected, "JSONL holds the records exactly"
    elif file_format == "csv":
        for row in _read_csv(output):
            stored = by_id[row["feedback_id"]]
            kind = stored.WhichOneof("value")
            assert row["thumb"] == ({1: "up", 2: "down"}[stored.thumb] if kind == "thumb" else "")
            assert row["score"] == (str(stored.score) if kind == "score" else "")
            assert row["label"] == (stored.label if kind == "label" else "")
            assert (row["comment"], row["correction"]) == (stored.comment, stored.correction)
            assert json.loads(row["metadata"]) == dict(stored.metadata)
            created = datetime.strptime(row["create_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            assert created == stored.create_time.ToDatetime()
    else:
        for record in _read_parquet(output):
            stored = by_id[record["feedback_id"]]
            kind = stored.WhichOneof("value")
            assert record["thumb"] == ({1: "up", 2: "down"}[stored.thumb] if kind == "thumb" else None)
            assert record["score"] == (stored.score if kind == "score" else None)
            assert record["label"] == (stored.label if kind == "label" else None)
            assert dict(record["metadata"]) == dict(stored.metadata)
            assert record["create_time"] == stored.create_time.ToDatetime(tzinfo=UTC)
            assert (record["revision"], record["source"]) == (stored.revision, _SOURCES[stored.source])


async def test_export_filters_what_it_writes(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, _varied(project, 24))
    output = tmp_path / "corrections.jsonl"
    done = await feedback_cli(
        server, "export", "--project", project, "--only-with-correction", "--output", str(output), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    corrections = _read_jsonl(output)
    assert len(corrections) == 4
    assert all(f.correction for f in corrections)
    versions = tmp_path / "v2.csv"
    only_v2 = ("--model", "bot", "--model-version", "v2")
    done = await feedback_cli(server, "export", "--project", project, *only_v2, "-o", str(versions), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {(row["model_version"], row["thumb"]) for row in _read_csv(versions)} == {("v2", "down")}


async def _wait_for_progress(state_file: Path, process: asyncio.subprocess.Process, records: int) -> dict[str, Any]:
    """The export's state once it has recorded at least ``records`` records (the export still running)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.returncode is None, "the export ended before it could be interrupted"
        try:
            state: dict[str, Any] = json.loads(await asyncio.to_thread(state_file.read_text))
        except (FileNotFoundError, ValueError):
            state = {"records": 0}
        if state["records"] >= records:
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"the export did not reach {records} records")


@pytest.mark.parametrize(
    ("file_format", "how"),
    [("jsonl", signal.SIGKILL), ("csv", signal.SIGINT), ("parquet", signal.SIGKILL)],
)
async def test_an_interrupted_export_resumes_with_every_record_exactly_once(
    client: FeedbackClient,
    server: FeedbackServer,
    project: str,
    tmp_path: Path,
    file_format: str,
    how: signal.Signals,
) -> None:
    await _store(client, [thumbs_up(f"t{i}", project=project, model="bot") for i in range(1500)])
    expected = [f.feedback_id for f in await _exported(client, project)]
    output = tmp_path / f"big.{file_format}"
    state_file = tmp_path / f"big.{file_format}.cursor"
    export = ("export", "--project", project, "--model", "bot", "--output", str(output))
    # One record per chunk: slow enough to interrupt in the middle.
    first = await start_cli(server, *export, "--chunk-size", "1", cwd=tmp_path)
    await _wait_for_progress(state_file, first, records=10)
    first.send_signal(how)
    _, stderr = await asyncio.wait_for(first.communicate(), CLI_TIMEOUT_S)
    if how == signal.SIGINT:
        assert first.returncode == ExitCode.INTERRUPTED
        assert "run the same command with --resume" in stderr.decode()
    else:
        assert first.returncode == -signal.SIGKILL
    state = json.loads(state_file.read_text())
    assert 10 <= state["records"] < 1500
    # A chunk half written when the process died: --resume must drop it.
    if file_format == "parquet":
        (tmp_path / "big.parquet.parts" / f"{state['parts']:08d}.parquet").write_bytes(b"PAR1 half a part")
    else:
        with output.open("ab") as file:
            file.write(b'{"feedback_id": "half a chunk\n' if file_format == "jsonl" else b"half,a,row\n")

    resumed = await feedback_cli(server, *export, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    [summary] = resumed.json_lines()
    assert (summary["records"], summary["records_this_run"]) == (1500, 1500 - state["records"])
    assert _ids(output, file_format) == expected, "every record exactly once, in order"
    assert not state_file.exists()


async def test_resume_refuses_other_filters_and_a_finished_export(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, _varied(project, 6))
    output = tmp_path / "out.jsonl"
    # A state file as export_state.save_state writes it (proto3 JSON of the request; omitted fields are empty).
    state = {"version": 1, "format": "jsonl", "cursor": "", "records": 0, "bytes": 0}
    other_filter = {"filter": {"project": project, "models": ["other"]}}
    (tmp_path / "out.jsonl.cursor").write_text(json.dumps({**state, "request": other_filter}))
    other = await feedback_cli(server, "export", "--project", project, "-o", str(output), "--resume", cwd=tmp_path)
    assert other.returncode == ExitCode.USAGE
    assert "the filters differ" in other.stderr.splitlines()[-1]

    shorter = {**state, "records": 9, "bytes": 10_000, "request": {"filter": {"project": project}}}
    (tmp_path / "out.jsonl.cursor").write_text(json.dumps(shorter))
    output.write_text("{}\n")
    changed = await feedback_cli(server, "export", "--project", project, "-o", str(output), "--resume", cwd=tmp_path)
    assert changed.returncode == ExitCode.USAGE
    assert "out.jsonl has 3 bytes, fewer than the 10000 already exported" in changed.stderr.splitlines()[-1]

    fresh = await feedback_cli(server, "export", "--project", project, "-o", str(output), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert len(_read_jsonl(output)) == 6
    again = await feedback_cli(server, "export", "--project", project, "-o", str(output), "--resume", cwd=tmp_path)
    assert again.returncode == ExitCode.USAGE
    assert "out.jsonl is complete" in again.stderr.splitlines()[-1]
    assert len(_read_jsonl(output)) == 6, "a refused resume leaves the finished file alone"


async def test_resume_without_a_checkpoint_is_an_error_not_a_full_export(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, _varied(project, 3))
    output = tmp_path / "never-started.jsonl"
    done = await feedback_cli(server, "export", "--project", project, "-o", str(output), "--resume", cwd=tmp_path)
    assert done.returncode == ExitCode.USAGE, done
    assert "--resume: there is no interrupted export of" in done.last_error_line
    assert "never-started.jsonl.cursor" in done.last_error_line
    assert not output.exists(), "nothing exported"


async def test_export_errors_name_the_output_path(server: FeedbackServer, project: str, tmp_path: Path) -> None:
    output = tmp_path / "missing-dir" / "x.jsonl"
    done = await feedback_cli(server, "export", "--project", project, "-o", str(output), cwd=tmp_path)
    assert done.returncode == ExitCode.FAILURE, done
    assert done.stderr.strip() == (
        f"feedback export: cannot write {output}: the directory {output.parent} does not exist"
    )
    assert ".cursor" not in done.stderr
    assert ".tmp" not in done.stderr


async def test_parquet_without_pyarrow_exits_1_saying_what_to_install(
    server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    (blocker / "pyarrow").mkdir(parents=True)
    (blocker / "pyarrow" / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    path = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    done = await feedback_cli(
        server,
        "export",
        "--project",
        project,
        "-o",
        str(tmp_path / "x.parquet"),
        cwd=tmp_path,
        env={"PYTHONPATH": path},
    )
    assert done.returncode == ExitCode.FAILURE, done
    assert "pip install 'feedback-client[parquet]'" in done.stderr
    assert not (tmp_path / "x.parquet").exists()


# ---- tail -----------------------------------------------------------------------------------------


def _by_group(lines: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest stats per (model_version, key), from the group lines."""
    return {(line["key"]["model_version"], line["key"]["key"]): line["stats"] for line in lines if "key" in line}


async def test_tail_no_follow_json_prints_each_group_with_its_counts(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    votes = [
        (thumbs_up if i < 3 else thumbs_down)(f"a{i}", project=project, model="bot", model_version="v1")
        for i in range(5)
    ]
    votes += [thumbs_up(f"b{i}", project=project, model="bot", model_version="v2") for i in range(2)]
    scores = [
        score(f"c{i}", project=project, model="bot", model_version="v2", key="quality", value=v)
        for i, v in enumerate([2, 4])
    ]
    await _store(client, [*votes, *scores, thumbs_up("other", project=project, model="other")])

    done = await feedback_cli(server, "tail", "--project", project, "--model", "bot", "--no-follow", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    groups = _by_group(done.json_lines())
    assert set(groups) == {("v1", "thumbs"), ("v2", "thumbs"), ("v2", "quality")}
    assert (groups["v1", "thumbs"]["count"], groups["v1", "thumbs"]["thumbs"]["up"]) == (5, 3)
    assert groups["v1", "thumbs"]["thumbs"]["down"] == 2
    assert math.isclose(groups["v1", "thumbs"]["thumbs"]["positive_rate"], 0.6)
    assert groups["v2", "thumbs"]["count"] == 2
    assert (groups["v2", "quality"]["scores"]["count"], groups["v2", "quality"]["scores"]["mean"]) == (2, 3.0)

    by_key = await feedback_cli(
        server, "tail", "--project", project, "--group-by", "key", "--no-follow", "--json", cwd=tmp_path
    )
    counts = {line["key"]["key"]: line["stats"]["count"] for line in by_key.json_lines() if "key" in line}
    assert counts == {"thumbs": 8, "quality": 2}

    terminal = await feedback_cli(
        server, "tail", "--project", project, "--model", "bot", "--no-follow", cwd=tmp_path, env={"TTY_COMPATIBLE": "1"}
    )
    assert terminal.returncode == 0, terminal.stderr
    assert "60.0% [23.1%, 88.2%]" in terminal.text, "positive rate with its Wilson interval"
    assert "3 ± 1.41" in terminal.text, "score mean ± sample stddev"
    assert "snapshot of 3 groups" in terminal.text


async def test_tail_json_ends_the_snapshot_with_a_line_and_leaves_out_empty_histograms(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(
        client,
        [
            thumbs_up("a", project=project, model="bot", model_version="v1"),
            score("b", project=project, model="bot", model_version="v1", key="quality", value=4),
        ],
    )
    done = await feedback_cli(server, "tail", "--project", project, "--no-follow", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    *groups, last = done.json_lines()
    assert set(last) == {"snapshot_complete"}
    assert last["snapshot_complete"]["group_count"] == 2
    assert last["snapshot_complete"]["watermark"].endswith("Z")
    scores = {group["key"]["key"]: group["stats"]["scores"] for group in groups}
    assert "histogram" not in scores["thumbs"], "no empty histogram"
    assert [bucket["count"] for bucket in scores["quality"]["histogram"] if bucket["count"]] == [1]


async def test_tail_follows_changes_until_ctrl_c_which_exits_0(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, [thumbs_up("t1", project=project, model="bot", model_version="v1")])
    tail = await start_cli(server, "tail", "--project", project, "--json", cwd=tmp_path)
    assert tail.stdout is not None
    first = json.loads(await asyncio.wait_for(tail.stdout.readline(), CLI_TIMEOUT_S))
    assert (first["key"]["model_version"], first["stats"]["count"]) == ("v1", 1)
    done = json.loads(await asyncio.wait_for(tail.stdout.readline(), CLI_TIMEOUT_S))
    assert done["snapshot_complete"]["group_count"] == 1
    await client.create(thumbs_down("t2", project=project, model="bot", model_version="v1"))
    update = json.loads(await asyncio.wait_for(tail.stdout.readline(), CLI_TIMEOUT_S))
    assert (update["stats"]["count"], update["stats"]["thumbs"]["down"]) == (2, 1)
    tail.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(tail.communicate(), CLI_TIMEOUT_S)
    assert tail.returncode == 0, stderr.decode()


# ---- compare --------------------------------------------------------------------------------------


async def test_compare_json_gives_the_comparison_and_the_terminal_a_table(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    def votes(version: str, up: int, down: int) -> list[feedback_pb2.Feedback]:
        vote = [thumbs_up] * up + [thumbs_down] * down
        return [
            make(f"{version}-{i}", project=project, model="bot", model_version=version) for i, make in enumerate(vote)
        ]

    await _store(client, votes("v1", 45, 55) + votes("v2", 56, 44))
    compare = ("compare", "--project", project, "--model", "bot", "--version-a", "v1", "--version-b", "v2")
    done = await feedback_cli(server, *compare, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [response] = done.json_lines()
    [thumbs] = response["comparisons"]
    assert (thumbs["key"], thumbs["test"], thumbs["metric"]) == (
        "thumbs",
        "two_proportion_z",
        "COMPARED_METRIC_POSITIVE_RATE",
    )
    assert (thumbs["sample_size_a"], thumbs["sample_size_b"]) == (100, 100)
    assert math.isclose(thumbs["difference"], 0.11)
    assert math.isclose(thumbs["p_value"], 0.1195, abs_tol=1e-3)

    table = await feedback_cli(server, *compare, "--wide", cwd=tmp_path, env={"TTY_COMPATIBLE": "1"})
    [row] = [line for line in table.text.splitlines() if "thumbs" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == ["thumbs", "two_proportion_z (z +1.56)", "45.0%", "56.0%", "+11.0 pp", "0.12", "100", "100"]

    same = await feedback_cli(
        server,
        "compare",
        "--project",
        project,
        "--model",
        "bot",
        "--version-a",
        "v1",
        "--version-b",
        "v1",
        cwd=tmp_path,
    )
    assert same.returncode == ExitCode.REFUSED
    assert "  version_b: " in same.stderr


async def test_compare_says_no_data_for_a_version_without_feedback_and_exits_8(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, [thumbs_up(f"v1-{i}", project=project, model="bot", model_version="v1") for i in range(3)])
    compare = ("compare", "--project", project, "--model", "bot", "--version-a", "v1", "--version-b", "v99")
    terminal = await feedback_cli(server, *compare, cwd=tmp_path, env={"TTY_COMPATIBLE": "1"})
    assert terminal.returncode == ExitCode.NO_DATA, terminal
    assert terminal.text.strip() == "no data for v99 of bot (with these filters): nothing to compare"
    machine = await feedback_cli(server, *compare, cwd=tmp_path)
    assert machine.returncode == ExitCode.NO_DATA
    [response] = machine.json_lines()
    assert response["comparisons"][0]["sample_size_b"] == 0
    assert machine.stderr.strip() == "no data for v99 of bot (with these filters): nothing to compare"


async def test_compare_shows_no_test_for_a_key_without_data_on_one_side(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    votes = [
        thumbs_up(f"{v}-{i}", project=project, model="bot", model_version=v) for v in ("v1", "v2") for i in range(3)
    ]
    only_v2 = score("s", project=project, model="bot", model_version="v2", key="quality", value=4)
    await _store(client, [*votes, only_v2])
    compare = ("compare", "--project", project, "--model", "bot", "--version-a", "v1", "--version-b", "v2")
    done = await feedback_cli(server, *compare, "--wide", cwd=tmp_path, env={"TTY_COMPATIBLE": "1"})
    assert done.returncode == 0, done
    [row] = [line for line in done.text.splitlines() if "quality" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == ["quality", "— (no data for v1)", "—", "4", "—", "—", "0", "1"]
    narrow = await feedback_cli(server, *compare, cwd=tmp_path, env={"TTY_COMPATIBLE": "1"})
    [row] = [line for line in narrow.text.splitlines() if "quality" in line]
    assert row.split() == ["quality", "—", "4", "—", "—", "0", "1", "no", "data", "for", "A"]


def test_the_exit_codes_are_the_same_in_the_readme_the_help_and_the_code() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code, meaning in MEANINGS.items():
        assert f"  {code.value:<4} {meaning}\n" in EXIT_CODES_HELP
        assert f"| {code.value} | {meaning} |" in readme, code
    assert tail.COMMAND.interrupted == ExitCode.OK, "Ctrl-C is how tail stops"
    assert all(
        CLIENT_COMMANDS[name].load().interrupted == ExitCode.INTERRUPTED for name in CLIENT_COMMANDS if name != "tail"
    )


def test_the_server_adds_its_commands_to_the_clients_feedback_through_entry_points() -> None:
    [script] = [e for e in metadata.distribution("feedback-client").entry_points if e.group == "console_scripts"]
    assert (script.name, script.value) == ("feedback", "feedback_client.cli:main")
    server = metadata.distribution("feedback-service")
    assert not [e for e in server.entry_points if e.group == "console_scripts"], "one `feedback`, the client's"
    added = {e.name: e.load() for e in server.entry_points if e.group == ENTRY_POINT_GROUP}
    assert set(added) == {"serve", "migrate", "verify", "repair"}
    assert all(isinstance(command, ExternalCommand) for command in added.values())
    assert LOCAL_ADMIN_KEY_FILE == FILE_NAME, "the client reads the admin key file the server writes"


async def test_server_commands_run_through_the_one_feedback_command(tmp_path: Path) -> None:
    version = await cli.run_feedback("127.0.0.1:1", "--version", cwd=tmp_path)
    assert version.stdout.strip() == (
        "feedback: feedback-client 0.1.0; feedback-service 0.1.0 (serve, migrate, verify, repair)"
    )
    serve_help = await cli.run_feedback("127.0.0.1:1", "serve", "--help", cwd=tmp_path)
    assert serve_help.returncode == 0, serve_help
    assert "--clickhouse-url" in serve_help.stdout
    migrated = await cli.run_feedback("127.0.0.1:1", "migrate", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert migrated.returncode == 0, migrated
    assert migrated.stdout.startswith("migrated embedded:")
    verified = await cli.run_feedback("127.0.0.1:1", "verify", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert verified.returncode == 0, verified
