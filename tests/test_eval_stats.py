"""The maths of held-out reports, against numbers worked out by hand."""

import math

import pytest

from agentgym.eval.stats import Estimate, estimate, mean_se, pass_at_k, t_interval


def test_mean_and_standard_error_by_hand():
    # [1, 0, 1, 1]: mean 3/4; squared deviations 1/16 + 9/16 + 1/16 + 1/16 = 3/4;
    # sample variance (ddof=1) 3/4 / 3 = 1/4, SD 1/2, SE 1/2 / sqrt(4) = 1/4.
    assert mean_se([1, 0, 1, 1]) == pytest.approx((0.75, 0.25))
    # [0.5, 0.25, 0.75, 0.5]: mean 1/2; squares 0 + 1/16 + 1/16 + 0 = 1/8; variance 1/24;
    # SE sqrt(1/24 / 4) = sqrt(1/96).
    assert mean_se([0.5, 0.25, 0.75, 0.5]) == pytest.approx((0.5, math.sqrt(1 / 96)))
    # The divisor is n - 1, not n: [0, 1] has variance 1/2, SE sqrt(1/2 / 2) = 1/2 (ddof=0 would give 0.354).
    assert mean_se([0, 1]) == pytest.approx((0.5, 0.5))


def test_one_task_has_no_standard_error_and_none_has_no_mean():
    m, se = mean_se([1.0])
    assert m == 1.0 and math.isnan(se)
    m, se = mean_se([])
    assert math.isnan(m) and math.isnan(se)
    one = estimate([0.25])
    assert one.value == 0.25 and one.tasks == 1 and math.isnan(one.se) and math.isnan(one.low)
    assert one.text() == "25.0% ± ?"
    none = estimate([])
    assert none.tasks == 0 and math.isnan(none.value) and none.text() == "-"
    assert Estimate.empty().tasks == 0


def test_t_interval_by_hand():
    # t_{0.975, 3} = 3.182446 (a t table); SE sqrt(1/96) = 0.102062; half width 0.324806.
    low, high = t_interval(0.5, math.sqrt(1 / 96), 4)
    assert low == pytest.approx(0.5 - 0.324806, abs=1e-5) and high == pytest.approx(0.5 + 0.324806, abs=1e-5)
    # Many tasks: t approaches the normal 1.96.
    low, high = t_interval(0.5, 0.01, 100_000)
    assert high - 0.5 == pytest.approx(0.0196, abs=1e-5)
    # Rates stay in [0, 1]: 0.75 +- 3.182 * 0.25 is clipped at both ends.
    assert t_interval(0.75, 0.25, 4) == (0.0, 1.0)
    assert all(math.isnan(x) for x in t_interval(0.5, float("nan"), 1))


def test_estimate_of_per_task_rates():
    e = estimate([0.5, 0.25, 0.75, 0.5])
    assert e.value == pytest.approx(0.5) and e.se == pytest.approx(0.102062, abs=1e-6) and e.tasks == 4
    assert (e.low, e.high) == pytest.approx((0.175194, 0.824806), abs=1e-5)
    assert e.text() == "50.0% ± 10.2 [17.5, 82.5]"
    # No task disagrees: SE 0 and a zero-width interval (the docstring says how to read it).
    flat = estimate([0.0, 0.0, 0.0])
    assert (flat.value, flat.se, flat.low, flat.high) == (0.0, 0.0, 0.0, 0.0)


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=4, c=3, k=2: only one failure, so any two samples hold a success
    assert pass_at_k(4, 3, 2) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_a_paired_change_is_the_mean_of_per_task_differences():
    from agentgym.eval.stats import paired_change

    before, after = [0.0, 0.5, 0.25, 1.0], [0.5, 0.5, 1.0, 1.0]
    est = paired_change(before, after)
    diffs = [0.5, 0.0, 0.75, 0.0]  # mean 0.3125; sample variance 0.296875 / 3
    assert est.value == pytest.approx(0.3125) and est.tasks == 4
    assert est.se == pytest.approx(math.sqrt(sum((d - 0.3125) ** 2 for d in diffs) / 3 / 4))
    # t with 3 degrees of freedom: 3.182446; never clipped to [0, 1] (a change can be negative)
    assert est.low == pytest.approx(0.3125 - 3.182446 * est.se, abs=1e-5)
    assert paired_change(after, before).value == pytest.approx(-0.3125)
    with pytest.raises(ValueError, match="same tasks"):
        paired_change([0.0], [0.0, 1.0])
