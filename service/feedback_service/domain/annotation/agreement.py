"""Inter-rater agreement of the reviewer workflow: Cohen's kappa and Krippendorff's alpha.

Reviewers rate the same outputs (thumbs, labels or scores); before their ratings are used as
ground truth, the evaluation needs to know how far the reviewers agree beyond chance. Pure
Python on purpose, like :mod:`feedback_service.domain.evaluation.statistics`: the service takes no
numpy/scipy dependency for a few well-known formulas. No I/O.

Input is a sequence of *units* (the rated items), each a mapping ``rater id -> value``. A rater
who did not rate a unit is simply absent from its mapping; that is how missing data is written.

Sources:

* Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
  Psychological Measurement 20(1), 37-46.
* Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
  Communication, University of Pennsylvania, https://repository.upenn.edu/asc_papers/43 -
  the coincidence-matrix formulation used here, with its worked examples.

Conventions shared by every function:

* Only units that can be paired count: for Krippendorff's alpha units with at least two
  ratings, for Cohen's kappa units rated by both raters. :class:`Agreement` counts those units,
  their raters and their ratings; a unit with a single rating tells nothing about agreement and
  is left out of the counts too.
* ``Agreement.value`` is ``None`` when the coefficient is not defined, never NaN: with no
  pairable unit, and when chance alone would already give perfect agreement (kappa's p_e = 1,
  alpha's expected disagreement D_e = 0, i.e. every pairable value is the same). The formulas
  are then 0/0. Reporting 1.0 would claim a reliability the data cannot show (raters who all
  press "thumbs up" on every item may or may not be able to tell good from bad), and 0.0 would
  claim its absence; ``None`` lets the caller say "not computable" instead.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, Literal, TypeAlias, TypeVar

R = TypeVar("R", bound=Hashable)
"""A rater id: any hashable value (a user id, an email address, ...)."""

V = TypeVar("V")

Level: TypeAlias = Literal["nominal", "interval"]
"""Level of measurement: ``nominal`` for categories (thumbs, labels), ``interval`` for scores."""

_LEVELS: tuple[Level, ...] = ("nominal", "interval")


class Method(enum.Enum):
    """Which coefficient :func:`measure_agreement` computed."""

    COHEN_KAPPA = "cohen_kappa"
    KRIPPENDORFF_ALPHA_NOMINAL = "krippendorff_alpha_nominal"
    KRIPPENDORFF_ALPHA_INTERVAL = "krippendorff_alpha_interval"


@dataclass(frozen=True, slots=True)
class Agreement:
    """A coefficient and the data it rests on.

    ``value`` is 1.0 for perfect agreement, about 0 for agreement at chance level and negative
    for systematic disagreement; ``None`` when not computable (see the module docstring).
    ``item_count`` counts the pairable units, ``rater_count`` the distinct raters appearing in
    them and ``rating_count`` the ratings they hold, so a caller can tell a coefficient on
    three items from one on three thousand.
    """

    value: float | None
    item_count: int
    rater_count: int
    rating_count: int


_NOT_COMPUTABLE = Agreement(value=None, item_count=0, rater_count=0, rating_count=0)


def measure_agreement(units: Iterable[Mapping[R, Hashable]], *, level: Level) -> tuple[Method, Agreement]:
    """The agreement coefficient suited to the data, and which one it is.

    Nominal data with exactly two raters across the pairable units gets Cohen's kappa, the
    coefficient most readers know for that design. Everything else gets Krippendorff's alpha at
    ``level``: it takes any number of raters and missing ratings, and at the interval level it
    weighs a 4-vs-5 disagreement less than a 1-vs-5 one, which kappa cannot (so two raters'
    scores get alpha, not kappa). Interval values must be finite real numbers.
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {_LEVELS}, got {level!r}")
    pairable = _pairable(units)
    if level == "interval":
        return Method.KRIPPENDORFF_ALPHA_INTERVAL, _interval_alpha(pairable)
    raters = _raters(pairable)
    if len(raters) == 2:
        first, second = raters
        return Method.COHEN_KAPPA, _kappa(pairable, first, second)
    return Method.KRIPPENDORFF_ALPHA_NOMINAL, _nominal_alpha(pairable)


def cohen_kappa(units: Iterable[Mapping[R, Hashable]], *, raters: tuple[R, R] | None = None) -> Agreement:
    """Cohen's (1960) kappa of two raters on nominal categories.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the share of units on which the two raters give
    the same category and p_e the share expected by chance from each rater's own category
    frequencies. Only units rated by both raters count; other raters' ratings are ignored.

    ``raters`` names the two raters; without it the units must hold at most two distinct raters
    (``ValueError`` otherwise, since the pair would be ambiguous). ``value`` is ``None`` with
    no unit rated by both and when p_e = 1 (both raters used one and the same category only).
    """
    materialized = list(units)
    if raters is None:
        found = _raters(materialized)
        if len(found) > 2:
            raise ValueError(f"Cohen's kappa compares two raters; the units hold {len(found)}: pass raters=(a, b)")
        if len(found) < 2:
            return _NOT_COMPUTABLE
        raters = (found[0], found[1])
    if raters[0] == raters[1]:
        raise ValueError(f"Cohen's kappa needs two different raters, got {raters[0]!r} twice")
    return _kappa(materialized, raters[0], raters[1])


def krippendorff_alpha_nominal(units: Iterable[Mapping[R, Hashable]]) -> Agreement:
    """Krippendorff's alpha for nominal data (categories): any number of raters, missing ratings allowed.

    The difference of two values is 0 when they are equal and 1 otherwise (Krippendorff 2011).
    See :func:`_alpha` for the formula.
    """
    return _nominal_alpha(_pairable(units))


def krippendorff_alpha_interval(units: Iterable[Mapping[R, float]]) -> Agreement:
    """Krippendorff's alpha for interval data (scores): any number of raters, missing ratings allowed.

    The squared difference of two values c and k is (c - k)^2 (Krippendorff 2011).
    Values must be finite real numbers (``bool`` is not a score); ``TypeError`` or
    ``ValueError`` otherwise. See :func:`_alpha` for the formula.
    """
    return _interval_alpha(_pairable(units))


# --- per-item disagreement ---------------------------------------------------------------------

U = TypeVar("U", bound=tuple[str, ...])
"""A unit id that sorts: e.g. ``(trace_id, span_id)``."""


@dataclass(frozen=True, slots=True)
class ItemDisagreement(Generic[U, R, V]):
    """One unit on which raters gave different values.

    ``disagreement`` is 1 - (ratings of the most common value) / (ratings of the unit): 0.5 for
    two raters who differ, 2/3 for three raters with three different values, 1/4 for three
    alike and one different among four. ``ratings`` are ``(rater, value)`` pairs ordered by rater.
    """

    unit: U
    disagreement: float
    rating_count: int
    distinct_value_count: int
    ratings: tuple[tuple[R, V], ...]


def most_disagreed(units: Mapping[U, Mapping[R, V]], *, limit: int = 10) -> list[ItemDisagreement[U, R, V]]:
    """The ``limit`` units with the highest disagreement, most first.

    Only units with two or more ratings and at least two distinct values count (a single rating
    or unanimous raters are no disagreement). Ties go to the unit with more ratings (the same
    share of dissent among more raters is better established), then to the smaller unit id, so
    the order is deterministic. Values are compared for equality only (the nominal view): for
    scores, 4 vs 5 is as much a disagreement as 1 vs 5.
    """
    ranked: list[tuple[Fraction, int, U, ItemDisagreement[U, R, V]]] = []
    for unit, ratings in units.items():
        m = len(ratings)
        tally = Counter(ratings.values())
        if m < 2 or len(tally) < 2:
            continue
        share = Fraction(max(tally.values()), m)
        found = ItemDisagreement(
            unit=unit,
            disagreement=float(1 - share),
            rating_count=m,
            distinct_value_count=len(tally),
            ratings=tuple(sorted(ratings.items(), key=lambda pair: str(pair[0]))),
        )
        ranked.append((share, -m, unit, found))
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked[: max(limit, 0)]]


# --- Cohen's kappa ------------------------------------------------------------------------------


def _kappa(units: Iterable[Mapping[R, Hashable]], first: R, second: R) -> Agreement:
    """kappa in exact integer arithmetic, so that p_e = 1 is recognised exactly.

    With n units, ``agreed`` of them on the same category, and a_c, b_c the units each rater
    put in category c: p_o = agreed / n and p_e = sum(a_c * b_c) / n^2, hence
    kappa = (n * agreed - sum(a_c * b_c)) / (n^2 - sum(a_c * b_c)).
    """
    pairs = [(unit[first], unit[second]) for unit in units if first in unit and second in unit]
    if not pairs:
        return _NOT_COMPUTABLE
    n = len(pairs)
    agreed = sum(1 for a, b in pairs if a == b)
    first_counts = Counter(a for a, _ in pairs)
    second_counts = Counter(b for _, b in pairs)
    chance = sum(count * second_counts[category] for category, count in first_counts.items())
    denominator = n * n - chance
    value = None if denominator == 0 else (n * agreed - chance) / denominator
    return Agreement(value=value, item_count=n, rater_count=2, rating_count=2 * n)


# --- Krippendorff's alpha -----------------------------------------------------------------------


def _nominal_alpha(pairable: Sequence[Mapping[R, Hashable]]) -> Agreement:
    values_by_unit = [list(unit.values()) for unit in pairable]
    return _agreement(pairable, _alpha(values_by_unit, _nominal_pair_sum))


def _interval_alpha(pairable: Sequence[Mapping[R, object]]) -> Agreement:
    values_by_unit = [[_score(value) for value in unit.values()] for unit in pairable]
    return _agreement(pairable, _alpha(_scaled(values_by_unit), _interval_pair_sum))


def _alpha(values_by_unit: Sequence[Sequence[V]], pair_sum: Callable[[Sequence[V]], float]) -> float | None:
    """alpha = 1 - D_o / D_e from the coincidence matrix, never built (Krippendorff 2011).

    Each pairable unit u with m_u values contributes every ordered pair of its values, weighted
    1 / (m_u - 1), to the coincidence matrix o_ck; its marginals n_c count each value once,
    n = sum n_c. Then

        D_o = 1/n * sum_c sum_k o_ck delta^2(c, k)
        D_e = 1/(n (n - 1)) * sum_c sum_k n_c n_k delta^2(c, k)
        alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_u P(u) / (m_u - 1) / P(all)

    where P(values) = sum of delta^2 over the ordered pairs of distinct positions of ``values``
    (``pair_sum``): sum_c sum_k n_uc n_uk delta^2(c, k) within a unit, and over all pairable
    values for D_e. ``pair_sum`` computes it in O(m) from counts or sums, so no V x V matrix of
    distinct values is ever formed: time is linear in the number of ratings, whether there are
    two distinct values or a hundred thousand.
    """
    if not values_by_unit:
        return None
    expected = pair_sum([value for values in values_by_unit for value in values])
    if expected == 0:
        return None
    n = sum(len(values) for values in values_by_unit)
    observed = math.fsum(pair_sum(values) / (len(values) - 1) for values in values_by_unit)
    return 1.0 - (n - 1) * observed / expected


def _nominal_pair_sum(values: Sequence[Hashable]) -> float:
    """Ordered pairs of different values: sum_{c != k} n_c n_k = m^2 - sum_c n_c^2 (exact integers)."""
    m = len(values)
    return m * m - sum(count * count for count in Counter(values).values())


def _interval_pair_sum(values: Sequence[float]) -> float:
    """sum over ordered pairs of (v_i - v_j)^2 = 2 m sum_i (v_i - mean)^2.

    The centred form of the identity sum_c sum_k n_c n_k (c - k)^2 = 2 (m sum n_c c^2 - (sum n_c c)^2):
    the same value, without the cancellation of the raw sums when the spread is small next to
    the values. Exactly 0.0 when all values are equal, which is how D_e = 0 is recognised.
    """
    low, high = min(values), max(values)
    if low == high:
        return 0.0
    mean = min(max(math.fsum(values) / len(values), low), high)
    return 2.0 * len(values) * math.fsum((value - mean) ** 2 for value in values)


def _scaled(values_by_unit: list[list[float]]) -> list[list[float]]:
    """Values divided by a power of two so that every |value| < 1.

    Exact in binary floating point, and alpha is a ratio of squared differences, so it does not
    change the result; it keeps squares of huge scores (1e200) from overflowing.
    """
    largest = max((abs(value) for values in values_by_unit for value in values), default=0.0)
    exponent = math.frexp(largest)[1]
    return [[math.ldexp(value, -exponent) for value in values] for values in values_by_unit]


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"interval ratings must be numbers, got {value!r}")
    try:
        score = float(value)
    except OverflowError:  # an int beyond the float range
        score = math.inf
    if not math.isfinite(score):
        raise ValueError(f"interval ratings must be finite, got {value!r}")
    return score


# --- units and raters ---------------------------------------------------------------------------


def _pairable(units: Iterable[Mapping[R, V]]) -> list[Mapping[R, V]]:
    """Units with at least two ratings: the only ones that carry information about agreement."""
    return [unit for unit in units if len(unit) >= 2]


def _raters(units: Iterable[Mapping[R, object]]) -> list[R]:
    """Distinct rater ids of ``units``, in order of first appearance."""
    return list(dict.fromkeys(rater for unit in units for rater in unit))


def _agreement(pairable: Sequence[Mapping[R, object]], value: float | None) -> Agreement:
    return Agreement(
        value=value,
        item_count=len(pairable),
        rater_count=len(_raters(pairable)),
        rating_count=sum(len(unit) for unit in pairable),
    )
