import numpy as np
import pytest

from agentgym.spaces import (
    Categorical,
    Continuous,
    HeldOut,
    Integer,
    ParamError,
    ParamSpace,
    Region,
)

SPACE = ParamSpace(
    [
        Categorical("op", ("+", "-", "*")),
        Integer("digits", 1, 4),
        Continuous("noise", 0.0, 2.0),
        Continuous("scale", 1.0, 100.0, log=True),
        Categorical("flag", (False, True)),
    ]
)


def test_unit_cube_cells_are_centred():
    assert SPACE["op"].to_unit("+") == pytest.approx(1 / 6)
    assert SPACE["op"].to_unit("*") == pytest.approx(5 / 6)
    assert SPACE["digits"].to_unit(1) == pytest.approx(0.125)
    assert SPACE["digits"].to_unit(4) == pytest.approx(0.875)
    assert SPACE["noise"].to_unit(0.5) == pytest.approx(0.25)
    assert SPACE["scale"].to_unit(10.0) == pytest.approx(0.5)  # log scale: 10 is halfway from 1 to 100


def test_from_unit_edges_and_clipping():
    assert SPACE["digits"].from_unit(0.0) == 1
    assert SPACE["digits"].from_unit(1.0) == 4  # the top edge belongs to the last cell
    assert SPACE["digits"].from_unit(0.2499) == 1
    assert SPACE["digits"].from_unit(0.25) == 2
    assert SPACE["op"].from_unit(-3.0) == "+"
    assert SPACE["op"].from_unit(7.0) == "*"
    assert SPACE["noise"].from_unit(1.5) == 2.0


def test_round_trip_through_the_cube(rng):
    for _ in range(500):
        p = SPACE.sample(rng)
        back = SPACE.from_unit(SPACE.to_unit(p))
        assert back["op"] == p["op"] and back["digits"] == p["digits"] and back["flag"] is p["flag"]
        assert back["noise"] == pytest.approx(p["noise"]) and back["scale"] == pytest.approx(p["scale"])


def test_sampling_is_uniform_over_discrete_values(rng):
    counts = {v: 0 for v in range(1, 5)}
    for _ in range(8000):
        counts[SPACE.sample(rng)["digits"]] += 1
    assert all(1800 < c < 2200 for c in counts.values()), counts


def test_validation_errors_name_the_problem():
    good = {"op": "+", "digits": 2, "noise": 0.1, "scale": 5.0, "flag": True}
    assert SPACE.validate(good) == good
    with pytest.raises(ParamError, match="unknown parameter.*'bogus'"):
        SPACE.validate({**good, "bogus": 1})
    with pytest.raises(ParamError, match="missing parameter 'noise'"):
        SPACE.validate({k: v for k, v in good.items() if k != "noise"})
    with pytest.raises(ParamError, match=r"digits=9 is outside \[1, 4\]"):
        SPACE.validate({**good, "digits": 9})
    with pytest.raises(ParamError, match="op='/' is not one of"):
        SPACE.validate({**good, "op": "/"})
    with pytest.raises(ParamError, match="flag=1 is not one of"):
        SPACE.validate({**good, "flag": 1})  # 1 == True in Python, but not for a bool dim
    with pytest.raises(ParamError, match="must be an integer"):
        SPACE.validate({**good, "digits": 2.5})


def test_region_contains_and_sampling_excludes_it(rng):
    region = Region({"digits": [3, 4], "noise": (1.0, 2.0)})
    assert region.contains({"digits": 3, "noise": 1.5})
    assert not region.contains({"digits": 2, "noise": 1.5})
    assert not region.contains({"digits": 3, "noise": 0.5})
    region.check_against(SPACE)
    for _ in range(20_000):
        assert not region.contains(SPACE.sample(rng, exclude=region))
    with pytest.raises(ParamError):
        Region({"digits": [9]}).check_against(SPACE)


def test_region_covering_everything_is_an_error(rng):
    everything = Region({"flag": [False, True]})
    with pytest.raises(ParamError, match="cover the whole space"):
        SPACE.sample(rng, exclude=everything, max_tries=50)


def test_held_out_split():
    h = HeldOut(seeds=range(100, 200), region=Region({"op": ["*"]}))
    assert h.is_held_out({"op": "+"}, 150)
    assert h.is_held_out({"op": "*"}, 5)
    assert not h.is_held_out({"op": "+"}, 5)


def test_grid_enumerates_discrete_values():
    small = ParamSpace([Categorical("a", ("x", "y")), Integer("b", 0, 2), Continuous("c", 0.0, 1.0)])
    grid = small.grid(per_continuous=2)
    assert len(grid) == 2 * 3 * 2
    assert {g["c"] for g in grid} == {0.25, 0.75}


def test_bad_dims_are_rejected():
    with pytest.raises(ValueError):
        Integer("x", 5, 1)
    with pytest.raises(ValueError):
        Continuous("x", 0.0, 1.0, log=True)
    with pytest.raises(ValueError):
        ParamSpace([Integer("x", 0, 1), Integer("x", 0, 2)])
    with pytest.raises(ValueError):
        Categorical("x", ())
    assert np.allclose(SPACE.to_unit(SPACE.from_unit([0.5] * 5)), [0.5, 0.625, 0.5, 0.5, 0.75])


def test_log_scale_edges_stay_inside_the_dim():
    d = Continuous("lr", 0.1, 10.0, log=True)
    assert d.from_unit(1.0) == 10.0 and d.from_unit(0.0) == pytest.approx(0.1)
    for u in np.linspace(0, 1, 1001):
        d.validate(d.from_unit(u))  # never rejected by its own bounds
