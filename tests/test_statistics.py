"""The aggregation maths, against textbook numbers and independent formulas. No server needed."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback_service.domain.evaluation import statistics as stats

# --- independent references --------------------------------------------------------------------


def wilson_by_quadratic(successes: int, trials: int, z: float = stats.Z_95) -> tuple[float, float]:
    """The interval's bounds as the roots of (p_hat - p)**2 = z**2 p (1 - p) / n, i.e. of a p^2 + b p + c."""
    p_hat = successes / trials
    a = 1.0 + z * z / trials
    b = -(2.0 * p_hat + z * z / trials)
    c = p_hat * p_hat
    # b^2 - 4ac, expanded so that it does not cancel; then the numerically stable pair of roots.
    discriminant = z * z / trials * (4.0 * p_hat * (1.0 - p_hat) + z * z / trials)
    q = (-b + math.sqrt(discriminant)) / 2.0
    return (c / q, q / a)


def student_t_p_closed_form(t: float, df: int) -> float:
    """Two-sided p for integer df from the finite sums of Abramowitz & Stegun 26.7.3 / 26.7.4."""
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    terms: list[float] = []
    if df % 2 == 0:
        # A(t|df) = sin(theta) * (1 + 1/2 cos^2 + (1*3)/(2*4) cos^4 + ... up to cos^(df-2))
        term = 1.0
        for k in range(df // 2):
            terms.append(term)
            term *= cos2 * (2 * k + 1) / (2 * k + 2)
        return 1.0 - sin * math.fsum(terms)
    # A(t|df) = 2/pi * (theta + sin(theta) * (cos + 2/3 cos^3 + ... up to cos^(df-2)))
    if df == 1:
        return 1.0 - 2.0 / math.pi * theta
    term = math.sqrt(cos2)
    for k in range(1, (df - 1) // 2 + 1):
        terms.append(term)
        term *= cos2 * (2 * k) / (2 * k + 1)
    return 1.0 - 2.0 / math.pi * (theta + sin * math.fsum(terms))


def welch_reference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(t for mean_b - mean_a, Welch-Satterthwaite df), straight from the textbook formulas."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(b) - statistics.fmean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df


def summary_of(sample: Sequence[float]) -> stats.ScoreSummary:
    return stats.summarize_scores(Counter(sample))


def floats(text: str) -> list[float]:
    return [float(word) for word in text.split()]


def expand(score_counts: dict[float, int]) -> list[float]:
    return [value for value, count in score_counts.items() for _ in range(count)]


# --- Wilson interval ---------------------------------------------------------------------------


def test_wilson_published_example() -> None:
    # 81 of 263 (Newcombe 1998; the Wikipedia "binomial proportion confidence interval" example).
    lower, upper = stats.wilson_interval(81, 263)
    assert lower == pytest.approx(0.2553, abs=5e-5)
    assert upper == pytest.approx(0.3662, abs=5e-5)
    assert (lower, upper) == pytest.approx(wilson_by_quadratic(81, 263), abs=1e-12)


def test_wilson_at_the_extremes() -> None:
    lower, upper = stats.wilson_interval(0, 10)
    assert lower == 0.0
    assert upper == pytest.approx(0.2775, abs=5e-5)
    lower, upper = stats.wilson_interval(10, 10)
    assert upper == 1.0
    assert lower == pytest.approx(0.7225, abs=5e-5)


def test_wilson_without_trials_is_zero_zero() -> None:
    assert stats.wilson_interval(0, 0) == (0.0, 0.0)


@pytest.mark.parametrize(("successes", "trials", "z"), [(-1, 10, 1.96), (11, 10, 1.96), (0, -1, 1.96), (1, 2, 0.0)])
def test_wilson_rejects_impossible_input(successes: int, trials: int, z: float) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        stats.wilson_interval(successes, trials, z)


@given(st.integers(min_value=1, max_value=10**9).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_properties(case: tuple[int, int]) -> None:
    successes, trials = case
    lower, upper = stats.wilson_interval(successes, trials)
    assert 0.0 <= lower <= successes / trials <= upper <= 1.0
    assert (lower, upper) == pytest.approx(wilson_by_quadratic(successes, trials), abs=1e-9)
    mirror_lower, mirror_upper = stats.wilson_interval(trials - successes, trials)
    assert (mirror_lower, mirror_upper) == pytest.approx((1.0 - upper, 1.0 - lower), abs=1e-12)


# --- histogram ---------------------------------------------------------------------------------


def test_histogram_edges_are_exact_literals() -> None:
    tenths = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert (*tenths, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 100.0) == stats.HISTOGRAM_EDGES
    assert len(stats.HISTOGRAM_EDGES) + 1 == stats.HISTOGRAM_BUCKETS


@pytest.mark.parametrize(
    ("score", "bucket"),
    [
        (-math.inf, 0),
        (-1e308, 0),
        (-5.0, 0),
        (-5e-324, 0),
        (-0.0, 1),
        (0.0, 1),
        (0.05, 1),
        (0.1, 2),
        (0.3, 4),
        (0.30000000000000004, 4),
        (0.9, 10),
        (0.999, 10),
        (1.0, 11),
        (4.999, 14),
        (5.0, 15),
        (9.5, 15),
        (10.0, 16),
        (99.99, 16),
        (100.0, 17),
        (1e308, 17),
        (math.inf, 17),
    ],
)
def test_histogram_bucket_at_and_between_edges(score: float, bucket: int) -> None:
    assert stats.histogram_bucket(score) == bucket


def test_histogram_bucket_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        stats.histogram_bucket(math.nan)


@given(st.floats(allow_nan=False))
def test_histogram_bucket_contains_its_score(score: float) -> None:
    bucket = stats.histogram_bucket(score)
    edges = (-math.inf, *stats.HISTOGRAM_EDGES, math.inf)
    assert edges[bucket] <= score
    assert score < edges[bucket + 1] or (score == math.inf and bucket == stats.HISTOGRAM_BUCKETS - 1)


# --- summarize_scores --------------------------------------------------------------------------


def test_summary_of_nothing_is_all_zero() -> None:
    summary = stats.summarize_scores({})
    assert summary == stats.ScoreSummary(
        count=0, mean=0.0, stddev=0.0, minimum=0.0, maximum=0.0, histogram=(0,) * stats.HISTOGRAM_BUCKETS
    )
    assert stats.summarize_scores({0.5: 0}) == summary


def test_summary_of_one_value() -> None:
    summary = stats.summarize_scores({4.0: 1})
    assert (summary.count, summary.mean, summary.stddev, summary.minimum, summary.maximum) == (1, 4.0, 0.0, 4.0, 4.0)
    constant = stats.summarize_scores({0.1: 7})
    assert (constant.count, constant.mean, constant.stddev) == (7, 0.1, 0.0)


def test_summary_of_a_rating_distribution() -> None:
    summary = stats.summarize_scores({1.0: 2, 3.0: 1, 5.0: 4, 0.0: 0})
    sample = [1.0, 1.0, 3.0, 5.0, 5.0, 5.0, 5.0]
    assert summary.count == 7
    assert summary.mean == statistics.fmean(sample)
    assert summary.stddev == pytest.approx(statistics.stdev(sample), rel=1e-15)
    assert (summary.minimum, summary.maximum) == (1.0, 5.0)
    expected = [0] * stats.HISTOGRAM_BUCKETS
    expected[11], expected[13], expected[15] = 2, 1, 4
    assert summary.histogram == tuple(expected)


@pytest.mark.parametrize("bad", [{math.nan: 1}, {math.inf: 1}, {-math.inf: 2}, {0.5: -1}])
def test_summary_rejects_bad_input(bad: dict[float, int]) -> None:
    with pytest.raises(ValueError, match=r"finite|negative"):
        stats.summarize_scores(bad)


finite_scores = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
score_maps = st.dictionaries(finite_scores, st.integers(min_value=1, max_value=20), min_size=1, max_size=30)


@given(score_maps)
def test_summary_matches_the_expanded_sample(score_counts: dict[float, int]) -> None:
    sample = expand(score_counts)
    summary = stats.summarize_scores(score_counts)
    assert summary.count == len(sample)
    assert summary.mean == pytest.approx(statistics.fmean(sample), rel=1e-14, abs=1e-300)
    expected_stddev = statistics.stdev(sample) if len(sample) > 1 else 0.0
    assert summary.stddev == pytest.approx(expected_stddev, rel=1e-12, abs=1e-300)
    assert (summary.minimum, summary.maximum) == (min(sample), max(sample))
    tally = [0] * stats.HISTOGRAM_BUCKETS
    edges = (-math.inf, *stats.HISTOGRAM_EDGES, math.inf)
    for value in sample:
        # Linear scan: independent of the bisect the module uses.
        tally[next(i for i in range(stats.HISTOGRAM_BUCKETS) if edges[i] <= value < edges[i + 1])] += 1
    assert summary.histogram == tuple(tally)
    assert sum(summary.histogram) == summary.count


def test_stddev_keeps_its_precision_next_to_a_large_offset() -> None:
    # sum of squares - n * mean**2 would lose every digit here (values ~1e9, spread ~1e-6).
    score_counts = {1e9 + k * 1e-6: k + 1 for k in range(10)}
    sample = expand(score_counts)
    summary = stats.summarize_scores(score_counts)
    assert summary.stddev == pytest.approx(statistics.stdev(sample), rel=1e-9)


def test_huge_values_do_not_overflow() -> None:
    score_counts = {1e308: 3, -1e308: 2}
    summary = stats.summarize_scores(score_counts)
    sample = expand(score_counts)
    assert summary.mean == pytest.approx(statistics.fmean([v / 8 for v in sample]) * 8, rel=1e-15)
    assert summary.stddev == pytest.approx(statistics.stdev(sample), rel=1e-14)
    assert summary.histogram[0] == 2
    assert summary.histogram[-1] == 3


def test_huge_identical_values() -> None:
    summary = stats.summarize_scores({math.ulp(0.0): 1, 1.7976931348623157e308: 5})
    assert math.isfinite(summary.mean)
    assert summary.mean <= summary.maximum
    assert math.isfinite(summary.stddev)
    top = stats.summarize_scores({1.7976931348623157e308: 4})
    assert (top.mean, top.stddev) == (1.7976931348623157e308, 0.0)


def test_stddev_beyond_the_float_range_is_infinite() -> None:
    summary = stats.summarize_scores({1.7e308: 1, -1.7e308: 1})
    assert summary.mean == 0.0
    assert summary.stddev == math.inf


# --- two-proportion z-test ---------------------------------------------------------------------


def test_two_proportion_textbook_example() -> None:
    result = stats.two_proportion_z_test(45, 100, 56, 100)
    pooled = 101 / 200
    z = (0.56 - 0.45) / math.sqrt(pooled * (1 - pooled) * (1 / 100 + 1 / 100))
    assert result.test == "two_proportion_z"
    assert result.statistic == pytest.approx(1.5557, abs=1e-4)
    assert result.statistic == pytest.approx(z, rel=1e-14)
    assert result.p_value == pytest.approx(0.1198, abs=1e-4)
    assert result.p_value == pytest.approx(2.0 * (1.0 - statistics.NormalDist().cdf(z)), abs=1e-12)
    assert result.difference == pytest.approx(0.11, abs=1e-15)


def test_two_proportion_is_antisymmetric() -> None:
    forward = stats.two_proportion_z_test(45, 100, 56, 100)
    backward = stats.two_proportion_z_test(56, 100, 45, 100)
    assert backward.statistic == -forward.statistic
    assert backward.difference == -forward.difference
    assert backward.p_value == forward.p_value


@pytest.mark.parametrize(
    ("counts", "difference"),
    [((0, 0, 5, 10), 0.0), ((3, 10, 0, 0), 0.0), ((0, 0, 0, 0), 0.0), ((0, 10, 0, 20), 0.0), ((10, 10, 20, 20), 0.0)],
)
def test_two_proportion_without_evidence(counts: tuple[int, int, int, int], difference: float) -> None:
    result = stats.two_proportion_z_test(*counts)
    assert (result.statistic, result.p_value, result.difference) == (0.0, 1.0, difference)


def test_two_proportion_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.two_proportion_z_test(11, 10, 1, 10)


@given(
    st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_two_proportion_properties(a: tuple[int, int], b: tuple[int, int]) -> None:
    result = stats.two_proportion_z_test(*a, *b)
    assert math.isfinite(result.statistic)
    assert 0.0 <= result.p_value <= 1.0
    assert math.copysign(1.0, result.statistic) == math.copysign(1.0, result.difference) or result.statistic == 0.0


# --- Student t distribution --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "df", "p", "tolerance"),
    [
        (2.228, 10, 0.05, 1e-4),  # t table: 0.975 quantile of t(10) is 2.228
        (2.0, 10, 0.07339, 1e-5),
        (1.96, 1e6, 0.05, 1e-4),  # normal limit
        (12.706, 1, 0.05, 1e-4),  # t table: 0.975 quantile of t(1) is 12.706
        (2.045, 29, 0.05, 1e-4),
        (0.0, 10, 1.0, 0.0),
        (0.0, 1e6, 1.0, 0.0),
    ],
)
def test_student_t_table_values(t: float, df: float, p: float, tolerance: float) -> None:
    assert stats.student_t_two_sided_p(t, df) == pytest.approx(p, abs=tolerance)
    assert stats.student_t_two_sided_p(-t, df) == stats.student_t_two_sided_p(t, df)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 29, 30, 100, 1001, 10_000, 99_998, 100_000, 250_001])
@pytest.mark.parametrize("t", [1e-9, 0.1, 0.7, 1.0, 1.5, 1.73, 1.8, 2.0, 2.5, 3.5, 6.0, 12.0, 40.0])
def test_student_t_against_closed_forms(t: float, df: int) -> None:
    # The reference's term recurrence itself drifts by about df * 1e-17.
    tolerance = 1e-12 + df * 1e-16
    assert stats.student_t_two_sided_p(t, df) == pytest.approx(student_t_p_closed_form(t, df), abs=tolerance)


@pytest.mark.parametrize("t", [0.5, 1.0, 1.96, 3.0])
def test_student_t_at_a_million_degrees_of_freedom(t: float) -> None:
    assert stats.student_t_two_sided_p(t, 1_000_000) == pytest.approx(student_t_p_closed_form(t, 1_000_000), abs=1e-10)


@given(st.floats(min_value=-1e300, max_value=1e300, allow_nan=False))
def test_student_t_one_and_two_degrees_of_freedom(t: float) -> None:
    # Cauchy: p = 2/pi atan(1/|t|); df = 2: p = 1 - |t| / sqrt(2 + t^2).
    cauchy = 1.0 if t == 0.0 else 2.0 / math.pi * math.atan(1.0 / abs(t))
    assert stats.student_t_two_sided_p(t, 1.0) == pytest.approx(cauchy, rel=1e-12, abs=1e-15)
    two = 1.0 - abs(t) / math.sqrt(2.0 + t * t) if abs(t) < 1e100 else 2.0 / (t * t)
    assert stats.student_t_two_sided_p(t, 2.0) == pytest.approx(two, abs=1e-14)


@given(st.floats(allow_nan=False), st.floats(min_value=1e-3, max_value=1e15))
def test_student_t_p_is_a_probability_decreasing_in_t(t: float, df: float) -> None:
    p = stats.student_t_two_sided_p(t, df)
    assert 0.0 <= p <= 1.0
    assert stats.student_t_two_sided_p(t / 2.0, df) >= p


@given(st.floats(min_value=-40.0, max_value=40.0))
def test_student_t_with_infinite_df_is_normal(t: float) -> None:
    normal = math.erfc(abs(t) / math.sqrt(2.0))
    assert stats.student_t_two_sided_p(t, math.inf) == normal
    assert stats.normal_two_sided_p(t) == normal
    assert stats.student_t_two_sided_p(t, 1e15) == pytest.approx(normal, abs=1e-13)


@pytest.mark.parametrize(("t", "df"), [(math.nan, 10.0), (1.0, 0.0), (1.0, -3.0), (1.0, math.nan)])
def test_student_t_rejects_bad_arguments(t: float, df: float) -> None:
    with pytest.raises(ValueError, match=r"NaN|positive"):
        stats.student_t_two_sided_p(t, df)


# --- Welch's t-test ----------------------------------------------------------------------------

# The data of the three examples of Wikipedia's "Welch's t-test" article, with t, df and p rounded
# (checked offline against scipy.stats.ttest_ind(equal_var=False)). The article reports t for
# mean_1 - mean_2; with a = A1, b = A2 the statistic here has the opposite sign.
WIKIPEDIA_EXAMPLES = [
    (
        floats("27.5 21.0 19.0 23.6 17.0 17.9 16.9 20.1 21.9 22.6 23.1 19.6 19.0 21.7 21.4"),
        floats("27.1 22.0 20.8 23.4 23.4 23.5 25.8 22.0 24.8 20.2 21.9 22.1 22.9 20.5 24.4"),
        2.455,
        24.99,
        0.0214,
    ),
    (
        floats("17.2 20.9 22.6 18.1 21.7 21.4 23.5 24.2 14.7 21.8"),
        floats("21.5 22.8 21.0 23.0 21.6 23.6 22.5 20.7 23.4 21.8 20.7 21.7 21.5 22.5 23.6 21.5 22.5 23.5 21.5 21.8"),
        1.565,
        9.905,
        0.1488,
    ),
    (
        floats("19.8 20.4 19.6 17.8 18.5 18.9 18.3 18.9 19.5 22.0"),
        floats("28.2 26.6 20.1 23.3 25.2 22.1 17.7 27.6 20.6 13.7 23.2 17.5 20.6 18.0 23.9 21.6 24.3 20.4 23.9 13.3"),
        2.226,
        24.52,
        0.0355,
    ),
]


@pytest.mark.parametrize(("a", "b", "t", "df", "p"), WIKIPEDIA_EXAMPLES)
def test_welch_wikipedia_examples(a: list[float], b: list[float], t: float, df: float, p: float) -> None:
    result = stats.welch_t_test(summary_of(a), summary_of(b))
    reference_t, reference_df = welch_reference(a, b)
    assert result.test == "welch_t"
    assert result.statistic == pytest.approx(t, abs=5e-3)
    assert result.statistic == pytest.approx(reference_t, rel=1e-12)
    assert reference_df == pytest.approx(df, abs=5e-3)
    assert result.p_value == pytest.approx(p, abs=5e-4)
    assert result.p_value == pytest.approx(stats.student_t_two_sided_p(reference_t, reference_df), abs=1e-12)
    assert result.difference == pytest.approx(statistics.fmean(b) - statistics.fmean(a), rel=1e-14)


def test_welch_first_example_to_full_precision() -> None:
    # Reference values from scipy.stats.ttest_ind(A2, A1, equal_var=False), computed once offline.
    a, b, *_ = WIKIPEDIA_EXAMPLES[0]
    result = stats.welch_t_test(summary_of(a), summary_of(b))
    assert result.statistic == pytest.approx(2.455356398286006, rel=1e-12)
    assert result.p_value == pytest.approx(0.021378001462866992, abs=1e-12)


def test_welch_is_antisymmetric() -> None:
    a, b, *_ = WIKIPEDIA_EXAMPLES[1]
    forward = stats.welch_t_test(summary_of(a), summary_of(b))
    backward = stats.welch_t_test(summary_of(b), summary_of(a))
    assert backward.statistic == -forward.statistic
    assert backward.difference == -forward.difference
    assert backward.p_value == forward.p_value


def test_welch_too_few_samples() -> None:
    empty = stats.summarize_scores({})
    one = stats.summarize_scores({3.0: 1})
    many = stats.summarize_scores({1.0: 3, 2.0: 4})
    for a, b, difference in [(empty, many, 0.0), (many, empty, 0.0), (one, many, many.mean - 3.0), (one, one, 0.0)]:
        result = stats.welch_t_test(a, b)
        assert (result.statistic, result.p_value, result.difference) == (0.0, 1.0, difference)


def test_welch_zero_standard_error() -> None:
    low, high = stats.summarize_scores({2.0: 5}), stats.summarize_scores({4.0: 3})
    same = stats.welch_t_test(low, stats.summarize_scores({2.0: 9}))
    assert (same.statistic, same.p_value, same.difference) == (0.0, 1.0, 0.0)
    up = stats.welch_t_test(low, high)
    assert (up.statistic, up.p_value, up.difference) == (math.inf, 0.0, 2.0)
    down = stats.welch_t_test(high, low)
    assert (down.statistic, down.p_value, down.difference) == (-math.inf, 0.0, -2.0)


def test_welch_one_constant_side() -> None:
    # Only b varies: Welch degrades gracefully to a one-sample t-test with df = n_b - 1.
    a = stats.summarize_scores({5.0: 10})
    b_sample = [4.0, 5.0, 6.0, 6.5, 7.0]
    result = stats.welch_t_test(a, summary_of(b_sample))
    t = (statistics.fmean(b_sample) - 5.0) / (statistics.stdev(b_sample) / math.sqrt(5))
    assert result.statistic == pytest.approx(t, rel=1e-13)
    assert result.p_value == pytest.approx(student_t_p_closed_form(t, 4), abs=1e-12)


def test_welch_with_overflowed_stddev_is_undecidable() -> None:
    huge = stats.summarize_scores({1.7e308: 1, -1.7e308: 1})
    result = stats.welch_t_test(huge, stats.summarize_scores({1.0: 2, 2.0: 2}))
    assert (result.statistic, result.p_value) == (0.0, 1.0)
    assert math.isfinite(result.difference)


def test_welch_with_huge_means_stays_finite() -> None:
    a = stats.summarize_scores({-1e308: 3, -0.9e308: 3})
    b = stats.summarize_scores({1e308: 3, 0.9e308: 3})
    result = stats.welch_t_test(a, b)
    assert result.difference == math.inf  # the true difference is beyond the float range
    assert math.isfinite(result.statistic)
    assert result.statistic > 0
    assert 0.0 <= result.p_value < 1e-6


def test_welch_rejects_a_nan_summary() -> None:
    bad = stats.ScoreSummary(count=3, mean=math.nan, stddev=1.0, minimum=0.0, maximum=1.0, histogram=())
    with pytest.raises(ValueError, match="finite mean"):
        stats.welch_t_test(bad, bad)


small_samples = st.lists(st.floats(min_value=-100.0, max_value=100.0), min_size=2, max_size=40)


@given(small_samples, small_samples)
def test_welch_properties(a: list[float], b: list[float]) -> None:
    result = stats.welch_t_test(summary_of(a), summary_of(b))
    assert 0.0 <= result.p_value <= 1.0
    assert not math.isnan(result.statistic)
    assert math.isfinite(result.statistic) or result.p_value == 0.0
    if result.statistic != 0.0:
        assert math.copysign(1.0, result.statistic) == math.copysign(1.0, result.difference)
    if statistics.variance(a) > 1e-6 and statistics.variance(b) > 1e-6:
        t, df = welch_reference(a, b)
        assert result.statistic == pytest.approx(t, rel=1e-9, abs=1e-9)
        assert result.p_value == pytest.approx(stats.student_t_two_sided_p(t, df), abs=1e-9)
