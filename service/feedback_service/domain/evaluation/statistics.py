"""Aggregation maths of the service: score summaries, confidence intervals and significance tests.

Aggregates are kept as exact counts (``score value -> how many feedback carry it``), so every
function here works from counts rather than from raw samples. Pure Python on purpose: the
service takes no scipy/numpy dependency for a handful of well-known formulas. No I/O.

Conventions shared by every function:

* Results never contain NaN. Degenerate inputs (no trials, too few samples, zero standard
  error) get the documented "no evidence" answer instead: statistic 0.0, p-value 1.0.
* p-values are two-sided and lie in [0, 1].
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

# z for a two-sided 95% interval: the 0.975 quantile of the standard normal distribution.
Z_95: Final = 1.959963984540054

# Written out as literals: accumulating 0.1 steps would give 0.30000000000000004 and friends,
# and a score of exactly 0.3 must land in the [0.3, 0.4) bucket.
HISTOGRAM_EDGES: Final[tuple[float, ...]] = (
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    2.0,
    3.0,
    4.0,
    5.0,
    10.0,
    100.0,
)
"""Fixed histogram bucket edges, chosen to fit every scale the service sees.

Tenths resolve 0-1 scores (probabilities, normalised ratings); unit steps from 1 to 5 resolve
1-5 star ratings; [5, 10) holds the upper half of 1-10 scales and 10 itself falls in [10, 100).
The buckets are: underflow (-inf, 0.0), then [e_i, e_i+1) for consecutive edges, then
overflow [100.0, +inf). Fixed edges keep histograms of different groups comparable and mergeable.
"""

HISTOGRAM_BUCKETS: Final = len(HISTOGRAM_EDGES) + 1

TWO_PROPORTION_Z: Final = "two_proportion_z"
WELCH_T: Final = "welch_t"


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval ``(lower, upper)`` for the proportion ``successes / trials``.

    Preferred over the normal (Wald) interval because it stays inside [0, 1] and behaves at
    0 and 100% successes and for small samples, which is where thumbs counts of a new group are.

    Convention: with ``trials == 0`` there is no information and the result is ``(0.0, 0.0)``
    (rather than the vacuous ``(0.0, 1.0)``), so an empty group is recognisable by its interval.
    """
    _check_proportion(successes, trials)
    if not (math.isfinite(z) and z > 0.0):
        raise ValueError(f"z must be a positive finite number, got {z!r}")
    if trials == 0:
        return (0.0, 0.0)
    n = float(trials)
    p = successes / trials
    z2_n = z * z / n
    denominator = 1.0 + z2_n
    centre = (p + z2_n / 2.0) / denominator
    half_width = z / denominator * math.sqrt(p * (1.0 - p) / n + z2_n / (4.0 * n))
    # At the extremes the exact bound is 0 or 1; rounding would otherwise leave e.g. 1e-17.
    lower = 0.0 if successes == 0 else _clamp(centre - half_width, 0.0, 1.0)
    upper = 1.0 if successes == trials else _clamp(centre + half_width, 0.0, 1.0)
    return (lower, upper)


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """Descriptive statistics of one group's scores.

    ``stddev`` is the sample standard deviation (n - 1 denominator); ``histogram`` has one count
    per bucket of :data:`HISTOGRAM_EDGES` (``HISTOGRAM_BUCKETS`` entries, underflow first).
    """

    count: int
    mean: float
    stddev: float
    minimum: float
    maximum: float
    histogram: tuple[int, ...]


def histogram_bucket(score: float) -> int:
    """Index of the histogram bucket holding ``score``: 0 is the underflow bucket (score < 0.0).

    Buckets are closed on the left, so a score equal to an edge belongs to the bucket that edge
    starts; ``+inf`` goes to the overflow bucket and ``-inf`` to the underflow bucket.
    """
    if math.isnan(score):
        raise ValueError("a NaN score has no histogram bucket")
    return bisect.bisect_right(HISTOGRAM_EDGES, score)


def summarize_scores(score_counts: Mapping[float, int]) -> ScoreSummary:
    """Summarise a group from its ``score value -> count`` map.

    Values must be finite; counts must be non-negative (zero counts are ignored). An empty group
    gives count 0, all statistics 0.0 and an all-zero histogram; ``stddev`` is 0.0 below two
    samples.

    The mean is the exactly summed ``value * count`` (error-free products, ``math.fsum``) divided
    once by the count. The standard deviation uses the corrected two-pass algorithm around that
    mean, so it does not lose precision when the spread is tiny next to the values (unlike
    ``sum of squares - n * mean**2``). Both are computed on values scaled by a power of two, which
    is exact and keeps huge values (1e308) from overflowing; only when the true standard deviation
    exceeds the float range (about 1.8e308) is ``stddev`` ``math.inf``.
    """
    # One pass checks, buckets and totals. The arithmetic is the earlier one-helper-per-step code's,
    # operation for operation, so results are the same to the bit (tests/test_snapshot_convert.py).
    values: list[float] = []
    counts: list[int] = []
    histogram = [0] * HISTOGRAM_BUCKETS
    total = 0
    for value, count in score_counts.items():
        if not math.isfinite(value):
            raise ValueError(f"scores must be finite, got {value!r}")
        if count < 0:
            raise ValueError(f"counts must not be negative, got {count} for score {value!r}")
        if count > 0:
            score = float(value)  # an int score counts as its float
            values.append(score)
            counts.append(count)
            histogram[bisect.bisect_right(HISTOGRAM_EDGES, score)] += count
            total += count
    if not values:
        return _EMPTY_SUMMARY

    minimum = min(values)
    maximum = max(values)
    # Scale so that every |value| < 1: products, deviations and squares then cannot overflow.
    exponent = math.frexp(max(abs(minimum), abs(maximum)))[1]
    scaled = [math.ldexp(value, -exponent) for value in values]
    weights = [float(count) for count in counts]
    # The mean lies between the extremes; rounding must not push it outside them (or past the float range).
    scaled_mean = _clamp(
        math.fsum(_exact_products(scaled, weights)) / total,
        math.ldexp(minimum, -exponent),
        math.ldexp(maximum, -exponent),
    )
    mean = math.ldexp(scaled_mean, exponent)
    stddev = 0.0
    if total >= 2:
        # Corrected two-pass: sum of squared deviations minus the (tiny) effect of the mean's rounding.
        deviations = [value - scaled_mean for value in scaled]
        squares = math.fsum(
            [weight * deviation * deviation for weight, deviation in zip(weights, deviations, strict=True)]
        )
        drift = math.fsum(_exact_products(deviations, weights))
        sum_of_squares = max(squares - drift * drift / total, 0.0)
        stddev = _unscale(math.sqrt(sum_of_squares / (total - 1)), exponent)
    return ScoreSummary(
        count=total, mean=mean, stddev=stddev, minimum=minimum, maximum=maximum, histogram=tuple(histogram)
    )


_EMPTY_SUMMARY: Final = ScoreSummary(
    count=0, mean=0.0, stddev=0.0, minimum=0.0, maximum=0.0, histogram=(0,) * HISTOGRAM_BUCKETS
)


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of a two-sample test: ``difference`` is always "b minus a".

    ``statistic`` has the sign of ``difference``; ``p_value`` is two-sided.
    """

    # Keeps pytest from collecting this class as a test when a test module imports it by name.
    __test__: ClassVar[bool] = False

    test: str
    statistic: float
    p_value: float
    difference: float


def two_proportion_z_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> TestResult:
    """Pooled two-proportion z-test of ``successes_b / trials_b`` against ``successes_a / trials_a``.

    ``statistic`` is z for p_b - p_a; the two-sided p-value comes from the normal distribution.

    Convention: when either side has no trials, the difference is undefined and reported as 0.0;
    when the pooled proportion is 0 or 1 both sides are identical (all failures or all
    successes) and the standard error is 0. In both cases there is no evidence of a difference:
    statistic 0.0, p-value 1.0.
    """
    _check_proportion(successes_a, trials_a)
    _check_proportion(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return TestResult(test=TWO_PROPORTION_Z, statistic=0.0, p_value=1.0, difference=0.0)
    difference = successes_b / trials_b - successes_a / trials_a
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    standard_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b))
    if standard_error == 0.0:
        return TestResult(test=TWO_PROPORTION_Z, statistic=0.0, p_value=1.0, difference=difference)
    z = difference / standard_error
    return TestResult(test=TWO_PROPORTION_Z, statistic=z, p_value=normal_two_sided_p(z), difference=difference)


def welch_t_test(a: ScoreSummary, b: ScoreSummary) -> TestResult:
    """Welch's unequal-variances t-test of ``b.mean`` against ``a.mean``.

    ``statistic`` is t for mean_b - mean_a; the two-sided p-value comes from Student's t
    distribution with Welch-Satterthwaite degrees of freedom.

    Conventions (never NaN):

    * either side has fewer than two samples (no variance estimate): statistic 0.0, p-value 1.0;
      ``difference`` is mean_b - mean_a if both sides have a sample, else 0.0;
    * zero standard error (both sides constant): equal means give statistic 0.0 and p-value 1.0,
      different means give statistic ``±math.inf`` and p-value 0.0 (the difference is certain);
    * a standard error beyond the float range (a ``stddev`` of ``math.inf``, see
      :func:`summarize_scores`) leaves the test undecidable: statistic 0.0, p-value 1.0.

    Only at the edges of the float range: ``difference`` overflows to ``±inf`` if the true
    difference exceeds it, and the statistic is ``±inf`` (p-value 0.0) if t itself does.
    """
    for summary in (a, b):
        if not (math.isfinite(summary.mean) and summary.stddev >= 0.0):
            raise ValueError(f"summary needs a finite mean and a non-negative stddev, got {summary!r}")
    if a.count < 1 or b.count < 1:
        return TestResult(test=WELCH_T, statistic=0.0, p_value=1.0, difference=0.0)
    difference = b.mean - a.mean
    if a.count < 2 or b.count < 2:
        return TestResult(test=WELCH_T, statistic=0.0, p_value=1.0, difference=difference)

    error_a = a.stddev / math.sqrt(a.count)
    error_b = b.stddev / math.sqrt(b.count)
    standard_error = math.hypot(error_a, error_b)
    if math.isinf(standard_error):
        return TestResult(test=WELCH_T, statistic=0.0, p_value=1.0, difference=difference)
    if standard_error == 0.0:
        if difference == 0.0:
            return TestResult(test=WELCH_T, statistic=0.0, p_value=1.0, difference=difference)
        return TestResult(
            test=WELCH_T, statistic=math.copysign(math.inf, difference), p_value=0.0, difference=difference
        )

    # Halving first is exact and keeps the numerator finite when the difference itself overflows.
    t = (b.mean / 2.0 - a.mean / 2.0) / standard_error * 2.0
    # Welch-Satterthwaite, written with variance shares (each in [0, 1]) so nothing under- or overflows.
    share_a = (error_a / standard_error) ** 2
    share_b = (error_b / standard_error) ** 2
    df = 1.0 / (share_a**2 / (a.count - 1) + share_b**2 / (b.count - 1))
    return TestResult(test=WELCH_T, statistic=t, p_value=student_t_two_sided_p(t, df), difference=difference)


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic: P(|Z| >= |z|)."""
    if math.isnan(z):
        raise ValueError("z must not be NaN")
    return math.erfc(abs(z) / math.sqrt(2.0))


def student_t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t distribution: P(|T| >= |t|) with ``df`` degrees of freedom.

    Uses P(|T| >= |t|) = I_x(df/2, 1/2) with x = df / (df + t**2), the regularized incomplete
    beta function. For large df and moderate t that continued fraction loses ~df * 1e-17 to
    cancellation (x is within ~1/df of 1), so there the asymptotic expansion in 1/df is used
    instead. Absolute error is below about 1e-12 for any df > 0 (non-integer df, as Welch's
    test produces, included); ``df = inf`` is the normal distribution.
    """
    if math.isnan(t):
        raise ValueError("t must not be NaN")
    if not df > 0.0:
        raise ValueError(f"df must be positive, got {df!r}")
    if math.isinf(df):
        return normal_two_sided_p(t)
    if df >= _LARGE_DF and abs(t) <= math.sqrt(math.sqrt(df / 10.0)):
        return _clamp(_student_t_two_sided_p_large_df(abs(t), df), 0.0, 1.0)
    r = abs(t) / math.sqrt(df)
    if r == 0.0:
        return 1.0
    if math.isinf(r):
        return 0.0
    # x = 1 / (1 + r**2) and y = 1 - x, each with its logarithm computed without cancellation
    # and without overflowing r**2 (r can be as large as 1e308).
    if r <= 1.0:
        r2 = r * r
        x, y = 1.0 / (1.0 + r2), r2 / (1.0 + r2)
        log_x, log_y = -math.log1p(r2), 2.0 * math.log(r) - math.log1p(r2)
    else:
        inverse_r2 = (1.0 / r) ** 2
        x, y = inverse_r2 / (1.0 + inverse_r2), 1.0 / (1.0 + inverse_r2)
        log_x, log_y = -2.0 * math.log(r) - math.log1p(inverse_r2), -math.log1p(inverse_r2)
    p = _regularized_incomplete_beta(df / 2.0, 0.5, x=x, y=y, log_x=log_x, log_y=log_y)
    return _clamp(p, 0.0, 1.0)


# --- helpers -------------------------------------------------------------------------------------

# Continued fraction: stop when a step changes the value by less than this (relative).
_CF_EPSILON: Final = 1e-15
# Keeps Lentz's method from dividing by zero.
_CF_TINY: Final = 1e-300
# The fraction converges in tens of steps for the t distribution; this only bounds a bug.
_CF_MAX_STEPS: Final = 10_000
# From this df on, the t distribution comes from the expansion in 1/df wherever t**4 <= df / 10: with
# four terms its relative error grows like (t**4 / df)**5 and stays below 1e-10 there. Beyond that
# t the continued fraction is accurate again (x is no longer close to 1) and p is below 1e-22.
_LARGE_DF: Final = 1e5
# Veltkamp splitting constant for doubles: 2**27 + 1.
_SPLITTER: Final = 134217729.0
# Stirling series coefficients B_2k / (2k (2k - 1)) for log Gamma, k = 1..7.
_STIRLING: Final = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156)
# Above this argument the Stirling series (7 terms) is accurate to double precision.
_STIRLING_FROM: Final = 10.0


def _check_proportion(successes: int, trials: int) -> None:
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _exact_products(values: list[float], weights: list[float]) -> list[float]:
    """Terms whose exact sum is the exact sum of value * weight (weights are counts below 2**53).

    Two terms per pair: p = fl(a * b) and the error e with p + e == a * b exactly (Dekker's product,
    with Veltkamp's split into halves of at most 26 significant bits), barring over/underflow.
    Written out in one loop: it runs for every score value of every group of a snapshot.
    """
    terms: list[float] = []
    append = terms.append
    for a, b in zip(values, weights, strict=True):
        p = a * b
        c = _SPLITTER * a
        a_high = c - (c - a)
        a_low = a - a_high
        c = _SPLITTER * b
        b_high = c - (c - b)
        b_low = b - b_high
        append(p)
        append(((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low)
    return terms


def _unscale(value: float, exponent: int) -> float:
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.inf


def _log_beta(a: float, b: float) -> float:
    """log B(a, b) = lgamma(a) + lgamma(b) - lgamma(a + b), without cancellation for large a or b.

    For df up to 1e6 the t distribution needs B(5e5, 1/2): lgamma(5e5) is about 6e6, so the plain
    difference would lose ~1e-9. The Stirling form below subtracts only small quantities.
    """
    small, large = min(a, b), max(a, b)
    if large < _STIRLING_FROM:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    # lgamma(large) - lgamma(large + small) from Stirling's series, with the big terms cancelled by hand.
    both = large + small
    difference = small - (large - 0.5) * math.log1p(small / large) - small * math.log(both)
    difference += _stirling_correction(large) - _stirling_correction(both)
    return math.lgamma(small) + difference


def _stirling_correction(x: float) -> float:
    """lgamma(x) - ((x - 1/2) log x - x + log(2 pi) / 2), for x >= _STIRLING_FROM."""
    inverse_square = 1.0 / (x * x)
    series = 0.0
    for coefficient in reversed(_STIRLING):
        series = series * inverse_square + coefficient
    return series / x


def _student_t_two_sided_p_large_df(t: float, df: float) -> float:
    """P(|T| >= t) for t >= 0 as erfc(t / sqrt 2) + 2 phi(t) sum_k g_k(t) / df**k (Fisher's expansion).

    The g_k follow from expanding the t density around the normal one in 1/df and integrating
    the tail term by term (k = 1..4).
    """
    t2 = t * t
    g1 = t * (t2 + 1.0) / 4.0
    g2 = t * (t2 - 3.0) * ((3.0 * t2 + 2.0) * t2 + 1.0) / 96.0
    g3 = t * (((((t2 - 11.0) * t2 + 14.0) * t2 + 6.0) * t2 - 3.0) * t2 - 15.0) / 384.0
    g4_terms = (15.0, -375.0, 2225.0, -2141.0, -939.0, -213.0, 915.0, 945.0)
    g4 = 0.0
    for coefficient in g4_terms:
        g4 = g4 * t2 + coefficient
    g4 *= t / 92160.0
    correction = ((g4 / df + g3) / df + g2) / df + g1
    density = math.exp(-t2 / 2.0) / math.sqrt(2.0 * math.pi)
    return math.erfc(t / math.sqrt(2.0)) + 2.0 * density * correction / df


def _regularized_incomplete_beta(a: float, b: float, *, x: float, y: float, log_x: float, log_y: float) -> float:
    """I_x(a, b) with y = 1 - x, as in Numerical Recipes ``betai``.

    The continued fraction converges quickly for x < (a + 1) / (a + b + 2); above that the
    symmetry I_x(a, b) = 1 - I_y(b, a) is used instead.
    """
    front = math.exp(a * log_x + b * log_y - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, y) / b


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function by modified Lentz's method (NR ``betacf``)."""
    c = 1.0
    d = _nonzero(1.0 - (a + b) * x / (a + 1.0))
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAX_STEPS + 1):
        m2 = 2 * m
        # Even step of the recurrence.
        aa = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        h *= d * c
        # Odd step.
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2))
        d = 1.0 / _nonzero(1.0 + aa * d)
        c = _nonzero(1.0 + aa / c)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPSILON:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def _nonzero(value: float) -> float:
    return value if abs(value) >= _CF_TINY else _CF_TINY
