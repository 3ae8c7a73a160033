"""``feedback tail`` and ``feedback compare`` on an 80-column terminal: one line per group or key, every
line within 80 columns, long names cut with an ellipsis; ``--wide`` shows every column and whole names."""

from __future__ import annotations

from pathlib import Path

from feedback_client import FeedbackClient, FeedbackError, score, thumbs_down, thumbs_up
from feedback_proto.v1 import feedback_pb2
from feedback_service.server import FeedbackServer
from tests.support import cli
from tests.support.cli import Done

MODEL = "support-assistant-large-2026-preview"
VERSION_A = "v2026.11.26-release-candidate-3"
VERSION_B = "v2026.12.01-release-candidate-1"
KEY = "helpfulness_of_the_answer_to_the_customers_question"
NARROW = {"TTY_COMPATIBLE": "1", "COLUMNS": "80"}
WIDE = {"TTY_COMPATIBLE": "1", "COLUMNS": "250"}


async def _store(client: FeedbackClient, project: str) -> None:
    items: list[feedback_pb2.Feedback] = []
    for version, ups in ((VERSION_A, 45), (VERSION_B, 56)):
        for n in range(100):
            vote = thumbs_up if n < ups else thumbs_down
            items.append(vote(f"{version}-{n}", project=project, model=MODEL, model_version=version, key=KEY))
        items += [
            score(f"{version}-s{n}", project=project, model=MODEL, model_version=version, key="quality", value=n)
            for n in range(1, 5)
        ]
    for result in await client.batch_create(items):
        assert not isinstance(result, FeedbackError), result


async def _run(server: FeedbackServer, tmp_path: Path, *arguments: str, env: dict[str, str]) -> Done:
    done = await cli.run_feedback(f"127.0.0.1:{server.port}", *arguments, cwd=tmp_path, env=env)
    assert done.returncode == 0, done
    return done


def _fits(done: Done) -> list[str]:
    lines = done.text.splitlines()
    assert lines, done
    assert max(len(line) for line in lines) <= 80, "\n" + done.text
    return lines


async def test_tail_fits_an_80_column_terminal_one_line_per_group_and_wide_shows_every_column(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, project)
    tail = ("tail", "--project", project, "--no-follow")
    lines = _fits(await _run(server, tmp_path, *tail, env=NARROW))
    headings = "model version key count positive (95% CI) score mean ± sd"
    assert lines[0].split() == headings.split(), "a header row without --wide's up, down and authors"
    groups = [line for line in lines if line.startswith(MODEL[:8])]
    assert len(groups) == 4, "one line per group, never wrapped\n" + "\n".join(lines)
    assert all("…" in line for line in groups), "long names cut with an ellipsis"
    [votes_a] = [line for line in groups if "45.0%" in line]
    assert votes_a.split()[3:] == ["100", "45.0%", "[35.6%,", "54.8%]", "—"], "count, positive rate, no scores"
    [scores_a, _] = [line for line in groups if "quality" in line]
    assert scores_a.split()[3:] == ["4", "—", "2.5", "±", "1.29"]
    assert "snapshot of 4 groups" in lines[-1]

    wide = await _run(server, tmp_path, *tail, "--wide", env=WIDE)
    for heading in ("up", "down", "authors", MODEL, VERSION_A, KEY):
        assert heading in wide.text


async def test_compare_fits_an_80_column_terminal_and_wide_names_the_test_and_versions(
    client: FeedbackClient, server: FeedbackServer, project: str, tmp_path: Path
) -> None:
    await _store(client, project)
    compare = ("compare", "--project", project, "--model", MODEL, "--version-a", VERSION_A, "--version-b", VERSION_B)
    lines = _fits(await _run(server, tmp_path, *compare, env=NARROW))
    said = " ".join(line.strip() for line in lines[: lines.index(next(x for x in lines if x.startswith("key")))])
    assert said == f"A = {VERSION_A}, B = {VERSION_B} (of {MODEL})", "the versions, whole, above the table"
    assert lines[-3].split() == ["key", "A", "B", "B", "-", "A", "p-value", "n", "A", "n", "B", "test"]
    votes, scores = lines[-2], lines[-1]
    key = votes.split()[0]
    assert KEY.startswith(key.removesuffix("…")), key
    assert key.endswith("…"), "a long key cut with an ellipsis"
    assert votes.split()[1:] == ["45.0%", "56.0%", "+11.0", "pp", "0.12", "100", "100", "z", "+1.56"]
    assert scores.split() == ["quality", "2.5", "2.5", "+0", "1", "4", "4", "t", "+0.00"]

    wide = await _run(server, tmp_path, *compare, "--wide", env=WIDE)
    for text in ("two_proportion_z (z +1.56)", f"A: {VERSION_A}", f"B: {VERSION_B}", KEY):
        assert text in wide.text
