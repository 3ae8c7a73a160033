"""Inter-rater agreement against published worked examples and a by-the-definition reference.

No server needed, except for the one end-to-end test of the disagreed items over gRPC at the end.

Sources of the expected values:

* Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability.
  https://repository.upenn.edu/asc_papers/43 - its worked examples: binary data of two
  observers, and nominal and interval data of four observers with missing values.
* Wikipedia, "Krippendorff's alpha", section "A computational example" (3 coders, 15 units).
* Wikipedia, "Cohen's kappa", sections "Simple example" and "Same percentages but different numbers".
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from feedback_service.domain.annotation.agreement import (
    Agreement,
    Method,
    cohen_kappa,
    krippendorff_alpha_interval,
    krippendorff_alpha_nominal,
    measure_agreement,
    most_disagreed,
)
from feedback_service.domain.annotation.operations import rating_text

V = TypeVar("V", bound=Hashable)

# --- data builders and the by-the-definition reference ----------------------------------------


def units_from_rows(rows: Mapping[str, str]) -> list[dict[str, int]]:
    """Reliability data in Krippendorff's canonical layout: one row per rater, "." where a value is missing."""
    columns = zip(*(row.split() for row in rows.values()), strict=True)
    return [
        {rater: int(value) for rater, value in zip(rows, column, strict=True) if value != "."} for column in columns
    ]


def units_from_table(table: Mapping[tuple[str, str], int]) -> list[dict[str, str]]:
    """Units of two raters "A" and "B" from a contingency table ``(A's category, B's category) -> units``."""
    return [{"A": a, "B": b} for (a, b), count in table.items() for _ in range(count)]


def counts(result: Agreement) -> tuple[int, int, int]:
    """What the coefficient rests on: (pairable units, their raters, their ratings)."""
    return (result.item_count, result.rater_count, result.rating_count)


def nominal_delta(c: Hashable, k: Hashable) -> float:
    return 0.0 if c == k else 1.0


def interval_delta(c: float, k: float) -> float:
    return (c - k) ** 2


def alpha_by_definition(units: Sequence[Mapping[str, V]], delta: Callable[[V, V], float]) -> float | None:
    """Krippendorff (2011): build the coincidence matrix o_ck over distinct values, then sum over all V x V cells.

    Deliberately naive (O(V^2) in the distinct values, O(m^2) within a unit) so it shares no
    shortcut with the module.
    """
    coincidences: dict[tuple[V, V], float] = defaultdict(float)
    for unit in units:
        values = list(unit.values())
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[c, k] += 1.0 / (m - 1)
    marginals: dict[V, float] = defaultdict(float)
    for (c, _), weight in coincidences.items():
        marginals[c] += weight
    n = sum(marginals.values())
    if n == 0:
        return None
    observed = sum(weight * delta(c, k) for (c, k), weight in coincidences.items()) / n
    expected = sum(n_c * n_k * delta(c, k) for c, n_c in marginals.items() for k, n_k in marginals.items())
    expected /= n * (n - 1)
    return None if expected == 0 else 1.0 - observed / expected


def random_units(
    rng: random.Random, *, units: int, raters: int, rate_probability: float, draw: Callable[[float], float]
) -> list[dict[str, float]]:
    """Units whose raters each rate with ``rate_probability``; a rating is ``draw(true value of the unit)``."""
    result: list[dict[str, float]] = []
    for _ in range(units):
        truth = rng.gauss(0.0, 1.0)
        result.append({f"r{r}": draw(truth) for r in range(raters) if rng.random() < rate_probability})
    return result


def two_raters_on_categories(
    rng: random.Random, *, units: int, categories: int, accuracy: float
) -> list[dict[str, int]]:
    """Two raters who each give a unit's true category with probability ``accuracy``, else a random one."""

    def rate(truth: int) -> int:
        return truth if rng.random() < accuracy else rng.randrange(categories)

    truths = [rng.randrange(categories) for _ in range(units)]
    return [{"a": rate(truth), "b": rate(truth)} for truth in truths]


# --- Krippendorff (2011): four observers, twelve units, missing data ---------------------------

# The paper's reliability data matrix. Unit 12 has a single value (B's 3), so it is
# not pairable: 11 units, 40 pairable values.
KRIPPENDORFF_2011 = units_from_rows(
    {
        "A": "1 2 3 3 2 1 4 1 2 . . .",
        "B": "1 2 3 3 2 2 4 1 2 5 . 3",
        "C": ". 3 3 3 2 3 4 2 2 5 1 .",
        "D": "1 2 3 3 2 4 4 1 2 5 1 .",
    }
)


def test_nominal_alpha_of_krippendorff_2011_four_observers_is_0_743() -> None:
    # By hand: value totals n_1..n_5 = 9, 13, 10, 5, 3 (n = 40, sum n_c^2 = 384); the diagonal
    # of the coincidence matrix is o_11..o_55 = 7, 10, 8, 4, 3 (sum 32). Hence
    # alpha = 1 - (n - 1) * (n - sum o_cc) / (n^2 - sum n_c^2) = 1 - 39 * 8 / 1216 = 113/152 = 0.7434;
    # the paper reports 0.743.
    result = krippendorff_alpha_nominal(KRIPPENDORFF_2011)

    assert result.value == pytest.approx(113 / 152)

    assert counts(result) == (11, 4, 40)
    assert round(result.value or 0.0, 3) == 0.743


def test_interval_alpha_of_krippendorff_2011_four_observers_is_0_849() -> None:
    # By hand: sum_ck o_ck (c - k)^2 = 52/3 and sum_ck n_c n_k (c - k)^2 = 4480, so
    # alpha = 1 - 39 * (52/3) / 4480 = 951/1120 = 0.8491; the paper reports 0.849.
    result = krippendorff_alpha_interval(KRIPPENDORFF_2011)

    assert result.value == pytest.approx(951 / 1120)

    assert counts(result) == (11, 4, 40)
    assert round(result.value or 0.0, 3) == 0.849


def test_measure_agreement_picks_alpha_for_four_observers() -> None:
    assert measure_agreement(KRIPPENDORFF_2011, level="nominal") == (
        Method.KRIPPENDORFF_ALPHA_NOMINAL,
        krippendorff_alpha_nominal(KRIPPENDORFF_2011),
    )
    assert measure_agreement(KRIPPENDORFF_2011, level="interval") == (
        Method.KRIPPENDORFF_ALPHA_INTERVAL,
        krippendorff_alpha_interval(KRIPPENDORFF_2011),
    )


# --- Krippendorff (2011): binary data, two observers -------------------------------------------

KRIPPENDORFF_2011_BINARY = units_from_rows({"A": "0 1 0 0 0 0 0 0 1 0", "B": "1 1 1 0 0 1 0 0 0 0"})


def test_nominal_alpha_of_krippendorff_2011_binary_example_is_0_095() -> None:
    # By hand: 5 units agree on 0 (o_00 = 10), 1 unit on 1 (o_11 = 2), 4 units disagree
    # (o_01 = o_10 = 4); n_0 = 14, n_1 = 6, n = 20.
    # alpha = 1 - (n - 1) * o_01 / (n_0 * n_1) = 1 - 19 * 4 / 84 = 2/21 = 0.0952; the paper reports 0.095.
    result = krippendorff_alpha_nominal(KRIPPENDORFF_2011_BINARY)

    assert result.value == pytest.approx(2 / 21)

    assert counts(result) == (10, 2, 20)


def test_kappa_of_krippendorff_2011_binary_example() -> None:
    # By hand (not in the paper): p_o = 6/10; A says 1 twice, B four times, so
    # p_e = 0.2 * 0.4 + 0.8 * 0.6 = 0.56 and kappa = (0.6 - 0.56) / 0.44 = 1/11 = 0.0909.
    # Kappa credits the raters' different marginals; alpha (0.095) pools them.
    result = cohen_kappa(KRIPPENDORFF_2011_BINARY)

    assert result.value == pytest.approx(1 / 11)
    assert counts(result) == (10, 2, 20)
    assert measure_agreement(KRIPPENDORFF_2011_BINARY, level="nominal") == (Method.COHEN_KAPPA, result)


# --- Wikipedia's computational example of alpha ------------------------------------------------


def test_nominal_alpha_of_wikipedia_three_coders_is_0_691() -> None:
    # 12 of the 15 units are pairable, 26 values: n_1..n_4 = 7, 4, 10, 5 (sum n_c^2 = 190) and
    # sum o_cc = 20, so alpha = 1 - 25 * (26 - 20) / (676 - 190) = 56/81 = 0.691 as published.
    units = units_from_rows(
        {
            "A": ". . . . . 3 4 1 2 1 1 3 3 . 3",
            "B": "1 . 2 1 3 3 4 3 . . . . . . .",
            "C": ". . 2 1 3 4 4 . 2 1 1 3 3 . 4",
        }
    )

    result = krippendorff_alpha_nominal(units)

    assert result.value == pytest.approx(56 / 81)

    assert counts(result) == (12, 3, 26)


# --- Cohen's kappa: Wikipedia's worked tables --------------------------------------------------


def test_kappa_of_wikipedia_simple_example_is_0_4() -> None:
    # 50 proposals: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50 = 0.5, B 30/50 = 0.6, so p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5
    # and kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    units = units_from_table({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})

    result = cohen_kappa(units)

    assert result.value == pytest.approx(0.4)
    assert counts(result) == (50, 2, 100)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # p_o = 0.60; A yes 0.60, B yes 0.70: p_e = 0.42 + 0.12 = 0.54; kappa = 0.06 / 0.46 = 0.1304.
        ({("yes", "yes"): 45, ("yes", "no"): 15, ("no", "yes"): 25, ("no", "no"): 15}, 0.06 / 0.46),
        # p_o = 0.60; A yes 0.60, B yes 0.30: p_e = 0.18 + 0.28 = 0.46; kappa = 0.14 / 0.54 = 0.2593.
        ({("yes", "yes"): 25, ("yes", "no"): 35, ("no", "yes"): 5, ("no", "no"): 35}, 0.14 / 0.54),
    ],
)
def test_kappa_of_wikipedia_same_percentages_different_numbers(
    table: dict[tuple[str, str], int], expected: float
) -> None:
    # Same observed agreement, different marginals: kappa tells them apart (0.1304 vs 0.2593).
    assert cohen_kappa(units_from_table(table)).value == pytest.approx(expected)


# --- edge cases ---------------------------------------------------------------------------------

NOTHING_PAIRABLE: list[list[dict[str, int]]] = [[], [{}], [{"a": 1}, {"b": 2}, {"a": 3}]]


@pytest.mark.parametrize("units", NOTHING_PAIRABLE)
@pytest.mark.parametrize("measure", [cohen_kappa, krippendorff_alpha_nominal, krippendorff_alpha_interval])
def test_no_pairable_units_is_not_computable_with_zero_counts(
    units: list[dict[str, int]], measure: Callable[[list[dict[str, int]]], Agreement]
) -> None:
    assert measure(units) == Agreement(value=None, item_count=0, rater_count=0, rating_count=0)


@pytest.mark.parametrize("units", NOTHING_PAIRABLE)
def test_measure_agreement_without_pairable_units_is_not_computable(units: list[dict[str, int]]) -> None:
    for level, method in (
        ("nominal", Method.KRIPPENDORFF_ALPHA_NOMINAL),
        ("interval", Method.KRIPPENDORFF_ALPHA_INTERVAL),
    ):
        assert measure_agreement(units, level=level) == (method, Agreement(None, 0, 0, 0))  # type: ignore[arg-type]


def test_perfect_agreement_is_exactly_one() -> None:
    units = [{"a": 1, "b": 1, "c": 1}, {"a": 2, "b": 2}, {"b": 5, "c": 5}, {"a": 2}]

    assert krippendorff_alpha_nominal(units) == Agreement(value=1.0, item_count=3, rater_count=3, rating_count=7)
    assert krippendorff_alpha_interval(units) == Agreement(value=1.0, item_count=3, rater_count=3, rating_count=7)
    assert cohen_kappa(units, raters=("a", "b")) == Agreement(value=1.0, item_count=2, rater_count=2, rating_count=4)


def test_alpha_is_not_computable_when_every_value_is_the_same() -> None:
    # D_e = 0: the data has no variation, so agreement cannot be told from chance; the module
    # reports None rather than a misleading 1.0, and still counts what it saw.
    units = [{"a": 0.7, "b": 0.7}, {"a": 0.7, "b": 0.7, "c": 0.7}, {"c": 0.1}]

    assert krippendorff_alpha_nominal(units) == Agreement(value=None, item_count=2, rater_count=3, rating_count=5)
    assert krippendorff_alpha_interval(units) == Agreement(value=None, item_count=2, rater_count=3, rating_count=5)


def test_kappa_is_not_computable_when_both_raters_use_one_category() -> None:
    # p_o = p_e = 1: kappa is 0/0.
    units = [{"a": "up", "b": "up"}] * 5

    assert cohen_kappa(units) == Agreement(value=None, item_count=5, rater_count=2, rating_count=10)
    assert measure_agreement(units, level="nominal") == (Method.COHEN_KAPPA, cohen_kappa(units))


def test_single_ratings_change_neither_value_nor_counts() -> None:
    # Rater "late" only ever rated alone: not a rater of any pairable unit.
    with_singles = [*KRIPPENDORFF_2011, {"late": 4}, {"A": 1}, {"late": 2}]

    assert krippendorff_alpha_nominal(with_singles) == krippendorff_alpha_nominal(KRIPPENDORFF_2011)
    assert krippendorff_alpha_interval(with_singles) == krippendorff_alpha_interval(KRIPPENDORFF_2011)


def test_measure_agreement_counts_raters_of_pairable_units_only() -> None:
    # A third rater who only rated alone does not turn a two-rater design into a three-rater one.
    units = [*KRIPPENDORFF_2011_BINARY, {"C": 1}]

    assert measure_agreement(units, level="nominal") == measure_agreement(KRIPPENDORFF_2011_BINARY, level="nominal")


def test_two_raters_at_the_interval_level_get_interval_alpha() -> None:
    method, result = measure_agreement(KRIPPENDORFF_2011_BINARY, level="interval")

    assert method is Method.KRIPPENDORFF_ALPHA_INTERVAL
    # With two values 0/1, (c - k)^2 equals the nominal difference: same alpha as nominal.
    assert result.value == pytest.approx(2 / 21)
    assert counts(result) == (10, 2, 20)


def test_kappa_with_more_than_two_raters_needs_the_pair() -> None:
    with pytest.raises(ValueError, match="raters="):
        cohen_kappa(KRIPPENDORFF_2011)

    # Units rated by both A and D: 1-9 (C's ratings ignored); they differ on units 6 and 8 only.
    result = cohen_kappa(KRIPPENDORFF_2011, raters=("A", "D"))
    assert (result.item_count, result.rater_count, result.rating_count) == (9, 2, 18)
    assert result.value is not None
    assert 0.0 < result.value < 1.0


def test_kappa_rejects_the_same_rater_twice() -> None:
    with pytest.raises(ValueError, match="two different raters"):
        cohen_kappa(KRIPPENDORFF_2011, raters=("A", "A"))


@pytest.mark.parametrize(
    ("value", "error"),
    [("4", TypeError), (True, TypeError), (None, TypeError), (float("nan"), ValueError), (float("inf"), ValueError)],
)
def test_interval_ratings_must_be_finite_numbers(value: Any, error: type[Exception]) -> None:
    units = [{"a": 1.0, "b": value}]

    with pytest.raises(error):
        krippendorff_alpha_interval(units)
    with pytest.raises(error):
        measure_agreement(units, level="interval")


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="level"):
        measure_agreement(KRIPPENDORFF_2011, level="ordinal")  # type: ignore[arg-type]


def test_agreement_is_immutable() -> None:
    result = krippendorff_alpha_nominal(KRIPPENDORFF_2011)

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.value = 1.0  # type: ignore[misc]


def test_units_may_be_a_one_shot_iterator() -> None:
    assert measure_agreement(iter(KRIPPENDORFF_2011), level="nominal") == measure_agreement(
        KRIPPENDORFF_2011, level="nominal"
    )
    assert cohen_kappa(iter(KRIPPENDORFF_2011_BINARY)) == cohen_kappa(KRIPPENDORFF_2011_BINARY)


# --- properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alpha_and_kappa_are_close_for_two_raters_and_many_units(seed: int) -> None:
    # Both raters share one error process, so their marginals agree and kappa ~ Scott's pi;
    # alpha differs from pi only by its small-sample correction, of order 1/n.
    units = two_raters_on_categories(random.Random(seed), units=5000, categories=3, accuracy=0.7)

    kappa = cohen_kappa(units).value
    alpha = krippendorff_alpha_nominal(units).value

    assert kappa is not None
    assert alpha is not None
    assert abs(kappa - alpha) < 0.05


def permuted(units: Sequence[Mapping[str, V]], rng: random.Random) -> list[dict[str, V]]:
    """The same ratings with units shuffled, raters renamed by a permutation and inserted in another order."""
    raters = sorted({rater for unit in units for rater in unit})
    renamed = dict(zip(raters, rng.sample(raters, len(raters)), strict=True))
    shuffled = rng.sample(list(units), len(units))
    return [
        dict(rng.sample([(renamed[rater], value) for rater, value in unit.items()], len(unit))) for unit in shuffled
    ]


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_permuting_units_and_raters_does_not_change_the_value(seed: int) -> None:
    rng = random.Random(seed)
    scores = random_units(rng, units=300, raters=5, rate_probability=0.6, draw=lambda t: round(t + rng.gauss(0, 1), 1))
    labels = [{rater: round(value) for rater, value in unit.items()} for unit in scores]
    pair = two_raters_on_categories(rng, units=300, categories=4, accuracy=0.6)

    for measure, units in (
        (krippendorff_alpha_interval, scores),
        (krippendorff_alpha_nominal, labels),
        (cohen_kappa, pair),
    ):
        original = measure(units)
        again = measure(permuted(units, rng))
        assert dataclasses.replace(again, value=None) == dataclasses.replace(original, value=None)
        assert again.value == pytest.approx(original.value, rel=1e-12)


@pytest.mark.parametrize("seed", [7, 8, 9, 10])
@pytest.mark.parametrize("distinct", ["few", "many"])
def test_interval_alpha_matches_the_pairwise_definition(seed: int, distinct: str) -> None:
    # "few": scores on a 1-5 scale; "many": continuous scores, nearly every value distinct.
    rng = random.Random(seed)

    def draw(truth: float) -> float:
        score = truth + rng.gauss(0.0, 0.8)
        return float(min(5, max(1, round(3 + score)))) if distinct == "few" else score

    units = random_units(rng, units=400, raters=6, rate_probability=0.5, draw=draw)

    assert krippendorff_alpha_interval(units).value == pytest.approx(
        alpha_by_definition(units, interval_delta), rel=1e-9
    )


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_nominal_alpha_matches_the_coincidence_matrix_definition(seed: int) -> None:
    rng = random.Random(seed)
    units = random_units(rng, units=400, raters=4, rate_probability=0.7, draw=lambda t: round(t + rng.gauss(0, 0.7)))

    assert krippendorff_alpha_nominal(units).value == pytest.approx(alpha_by_definition(units, nominal_delta), rel=1e-9)


def test_interval_alpha_ignores_location_and_scale_even_for_extreme_values() -> None:
    # alpha depends on differences only: shifting by 1e9 (a spread tiny next to the values)
    # or scaling by 1e300 (squares beyond the float range) must not change it.
    base = krippendorff_alpha_interval(KRIPPENDORFF_2011).value

    transforms: list[Callable[[float], float]] = [lambda v: v + 1e9, lambda v: v * 1e300, lambda v: -v * 1e-300]
    for transform in transforms:
        moved = [{rater: transform(float(value)) for rater, value in unit.items()} for unit in KRIPPENDORFF_2011]
        assert krippendorff_alpha_interval(moved).value == pytest.approx(base, rel=1e-9)


def test_interval_alpha_recovers_the_reliability_of_100k_units() -> None:
    # True score ~ N(0, 1), each of three raters adds independent N(0, 0.5^2) error: the share of
    # rating variance that is true variance is 1 / 1.25 = 0.8, which interval alpha estimates.
    rng = random.Random(14)
    units = random_units(rng, units=100_000, raters=3, rate_probability=0.9, draw=lambda t: t + rng.gauss(0.0, 0.5))

    method, result = measure_agreement(units, level="interval")

    assert method is Method.KRIPPENDORFF_ALPHA_INTERVAL
    assert result.value == pytest.approx(0.8, abs=0.01)
    assert result.item_count > 95_000


def test_nominal_alpha_on_100k_units_with_a_large_label_set() -> None:
    # Three raters give the true label (one of 50 000) with probability 0.6, else a random one:
    # two ratings of a unit agree with probability ~0.6^2 = 0.36 and chance agreement is ~1/50 000,
    # so alpha ~ 0.36.
    rng = random.Random(15)
    labels = 50_000

    def rate(truth: int) -> int:
        return truth if rng.random() < 0.6 else rng.randrange(labels)

    units = [{f"r{r}": rate(truth) for r in range(3)} for truth in (rng.randrange(labels) for _ in range(100_000))]

    method, result = measure_agreement(units, level="nominal")

    assert method is Method.KRIPPENDORFF_ALPHA_NOMINAL
    assert result.value == pytest.approx(0.36, abs=0.01)
    assert (result.item_count, result.rater_count, result.rating_count) == (100_000, 3, 300_000)


# --- the items reviewers disagreed on most ------------------------------------------------------


def test_most_disagreed_ranks_by_disagreement_then_more_ratings_then_unit() -> None:
    units: dict[tuple[str, str], dict[str, str]] = {
        ("t-agree", ""): {"a": "up", "b": "up", "c": "up"},  # unanimous: no disagreement
        ("t-single", ""): {"a": "down"},  # one rating: no disagreement
        ("t-quarter", ""): {"a": "up", "b": "up", "c": "up", "d": "down"},  # 1 - 3/4
        ("t-third", ""): {"a": "up", "b": "down", "c": "up"},  # 1 - 2/3
        ("t-half-b", ""): {"a": "up", "b": "down"},  # 1 - 1/2, two ratings
        ("t-half-a", "s1"): {"b": "down", "a": "up"},  # 1 - 1/2, two ratings, smaller trace id
        ("t-half-4", ""): {"a": "up", "b": "down", "c": "up", "d": "down"},  # 1 - 2/4, four ratings
        ("t-three-ways", ""): {"a": "x", "b": "y", "c": "z"},  # 1 - 1/3
    }
    found = most_disagreed(units)
    assert [(d.unit[0], d.disagreement, d.rating_count, d.distinct_value_count) for d in found] == [
        ("t-three-ways", pytest.approx(2 / 3), 3, 3),
        ("t-half-4", 0.5, 4, 2),
        ("t-half-a", 0.5, 2, 2),
        ("t-half-b", 0.5, 2, 2),
        ("t-third", pytest.approx(1 / 3), 3, 2),
        ("t-quarter", 0.25, 4, 2),
    ]
    assert found[2].unit == ("t-half-a", "s1")
    assert found[2].ratings == (("a", "up"), ("b", "down"))  # ordered by rater
    assert [d.unit[0] for d in most_disagreed(units, limit=2)] == ["t-three-ways", "t-half-4"]
    assert most_disagreed(units, limit=0) == []


def test_most_disagreed_keeps_the_ten_highest_of_many() -> None:
    units = {(f"t{n:03d}", ""): {"a": 1.0, "b": 1.0 if n % 3 else 2.0, "c": float(n % 2)} for n in range(100)}
    found = most_disagreed(units)
    assert len(found) == 10
    assert all(a.disagreement >= b.disagreement for a, b in itertools.pairwise(found))
    # n % 3 == 0 and n odd: values 1, 2, 1 -> 1/3; n % 3 == 0 and n even: 1, 2, 0 -> 2/3 (the highest).
    assert [d.unit[0] for d in found[:3]] == ["t000", "t006", "t012"]
    assert found[0].disagreement == pytest.approx(2 / 3)


def test_scores_disagree_only_when_different_and_ratings_read_as_text() -> None:
    assert most_disagreed({("t", ""): {"a": 4.0, "b": 4.0}}) == []
    assert [rating_text(v) for v in ("thumb:up", "thumb:down", "label:billing", 3.0, 4.5, -2.0)] == [
        "up", "down", "billing", "3", "4.5", "-2",
    ]  # fmt: skip


async def test_get_agreement_lists_the_items_reviewers_disagreed_on(channel: Any, stub: Any, project: str) -> None:
    from feedback_proto.v1 import annotation_pb2 as pb
    from feedback_proto.v1 import annotation_pb2_grpc, feedback_pb2
    from feedback_proto.v1 import feedback_service_pb2 as feedback_pb

    annotation = annotation_pb2_grpc.AnnotationServiceStub(channel)
    queue = pb.Queue(
        project=project,
        name="disagreements",
        keys=["correctness", "tone"],
        reviewers_per_item=3,
        trace_url_template="https://traces.example.com/t/{trace_id}",
    )
    queue_id = (await annotation.CreateQueue(pb.CreateQueueRequest(queue=queue))).queue.queue_id
    traces = ["tr-a", "tr-b", "tr-c"]
    await annotation.AddQueueItems(
        pb.AddQueueItemsRequest(project=project, queue_id=queue_id, items=[pb.QueueItem(trace_id=t) for t in traces])
    )
    # correctness (thumbs): tr-a 1 up 1 down 1 up (1/3), tr-b all up (none), tr-c up vs down (1/2).
    # tone (labels): everyone "calm" everywhere: no disagreement.
    thumbs = {"alice": (1, 1, 1), "bob": (2, 1, 2), "carol": (1, 1, 0)}
    for author, by_trace in thumbs.items():
        for trace, thumb in zip(traces, by_trace, strict=True):
            values: list[feedback_pb2.Feedback] = [
                feedback_pb2.Feedback(key="tone", label="calm"),
            ]
            if thumb:
                values.append(feedback_pb2.Feedback(key="correctness", thumb=thumb))  # type: ignore[arg-type]
            for value in values:
                value.MergeFrom(
                    feedback_pb2.Feedback(
                        project=project, trace_id=trace, source=feedback_pb2.SOURCE_REVIEWER, author=author
                    )
                )
                await stub.CreateFeedback(feedback_pb.CreateFeedbackRequest(feedback=value))
    response = await annotation.GetAgreement(pb.GetAgreementRequest(project=project, queue_id=queue_id))
    correctness, tone = response.agreements
    assert (correctness.key, tone.key, list(tone.disagreements)) == ("correctness", "tone", [])
    assert [
        (d.trace_id, d.trace_url, d.disagreement, d.rating_count, d.distinct_value_count)
        for d in correctness.disagreements
    ] == [
        ("tr-c", "https://traces.example.com/t/tr-c", 0.5, 2, 2),
        ("tr-a", "https://traces.example.com/t/tr-a", pytest.approx(1 / 3), 3, 2),
    ]
    assert [(r.reviewer, r.value) for r in correctness.disagreements[1].ratings] == [
        ("alice", "up"), ("bob", "down"), ("carol", "up"),
    ]  # fmt: skip
    by_key = await annotation.GetAgreement(pb.GetAgreementRequest(project=project, key="correctness"))
    assert [(d.trace_id, d.trace_url) for d in by_key.agreements[0].disagreements] == [("tr-c", ""), ("tr-a", "")]
