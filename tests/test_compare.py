"""CompareVersions: per-key statistics of two versions and the right significance test."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import grpc
import pytest

from feedback_proto.v1 import aggregates_pb2 as agg
from feedback_proto.v1 import feedback_pb2
from feedback_proto.v1 import feedback_service_pb2 as pb
from tests.helpers import field_violations, thumbs_up

if TYPE_CHECKING:  # the async stub class exists only in the .pyi stubs
    from feedback_proto.v1.feedback_service_pb2_grpc import FeedbackServiceAsyncStub as FeedbackServiceStub


def _votes(project: str, version: str, up: int, down: int) -> list[feedback_pb2.Feedback]:
    return [
        thumbs_up(
            project,
            model="bot",
            model_version=version,
            thumb=feedback_pb2.THUMB_UP if i < up else feedback_pb2.THUMB_DOWN,
        )
        for i in range(up + down)
    ]


def _scores(project: str, version: str, values: list[float]) -> list[feedback_pb2.Feedback]:
    return [thumbs_up(project, model="bot", model_version=version, key="quality", score=v) for v in values]


A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


async def test_versions_are_compared_with_a_z_test_for_thumbs_and_welch_for_scores(
    stub: FeedbackServiceStub, project: str
) -> None:
    items = _votes(project, "v1", 45, 55) + _votes(project, "v2", 56, 44) + _scores(project, "v1", A1)
    items += [*_scores(project, "v2", A2), thumbs_up(project, model="other", model_version="v1")]
    for start in range(0, len(items), 1000):
        await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=items[start : start + 1000]))
    response = await stub.CompareVersions(
        pb.CompareVersionsRequest(project=project, model="bot", version_a="v1", version_b="v2")
    )
    by_key = {c.key: c for c in response.comparisons}
    assert list(by_key) == ["quality", "thumbs"]

    thumbs = by_key["thumbs"]
    assert thumbs.metric == agg.COMPARED_METRIC_POSITIVE_RATE
    assert thumbs.test == "two_proportion_z"
    assert (thumbs.sample_size_a, thumbs.sample_size_b) == (100, 100)
    assert (thumbs.a.thumbs.up, thumbs.b.thumbs.up) == (45, 56)
    assert math.isclose(thumbs.difference, 0.11)
    assert math.isclose(thumbs.statistic, 1.5566, abs_tol=1e-3)  # textbook: pooled p = 0.505
    assert math.isclose(thumbs.p_value, 0.1195, abs_tol=1e-3)

    quality = by_key["quality"]
    assert quality.metric == agg.COMPARED_METRIC_SCORE_MEAN
    assert quality.test == "welch_t"
    assert (quality.sample_size_a, quality.sample_size_b) == (15, 15)
    assert math.isclose(quality.difference, sum(A2) / 15 - sum(A1) / 15)
    assert math.isclose(abs(quality.statistic), 2.46, abs_tol=0.01)  # Welch's t-test, Wikipedia example 1
    assert math.isclose(quality.p_value, 0.021, abs_tol=0.001)


async def test_keys_can_be_chosen_and_a_missing_side_has_p_value_one(stub: FeedbackServiceStub, project: str) -> None:
    await stub.BatchCreateFeedback(pb.BatchCreateFeedbackRequest(feedback=_votes(project, "v1", 3, 1)))
    response = await stub.CompareVersions(
        pb.CompareVersionsRequest(project=project, model="bot", version_a="v1", version_b="v9", keys=["thumbs", "nope"])
    )
    nope, thumbs = response.comparisons
    assert (nope.key, nope.metric, nope.p_value, nope.test) == ("nope", agg.COMPARED_METRIC_UNSPECIFIED, 1.0, "")
    assert (thumbs.sample_size_a, thumbs.sample_size_b, thumbs.p_value) == (4, 0, 1.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": ""}, "model"),
        ({"version_a": ""}, "version_a"),
        ({"version_b": "v1"}, "version_b"),
        ({"project": "Bad"}, "project"),
        ({"sources": [9]}, "sources"),
    ],
)
async def test_bad_comparisons_are_invalid_argument(
    stub: FeedbackServiceStub, project: str, fields: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"project": project, "model": "bot", "version_a": "v1", "version_b": "v2", **fields}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CompareVersions(pb.CompareVersionsRequest(**values))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)
