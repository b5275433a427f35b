"""Validation of planner inputs: bad data fails on construction, naming the record and field."""

from __future__ import annotations

import pytest

from routing import (
    Depot,
    LatLon,
    Load,
    Problem,
    RoutingInputError,
    Stop,
    TempZone,
    TimeWindow,
    Vehicle,
)

SHANGHAI = LatLon(31.23, 121.47)


def _problem(*stops: Stop, **kw) -> Problem:
    return Problem(
        (Depot("wh", SHANGHAI),), stops, (Vehicle("v1", "wh", Load(10_000, 10_000, 10)),), **kw
    )


def _stop(sid="s1", lat=31.25, lon=121.50, **kw) -> Stop:
    kw.setdefault("drops", {TempZone.AMBIENT: Load(100, 100, 1)})
    return Stop(sid, LatLon(lat, lon), **kw)


def test_latitude_out_of_range_names_the_stop():
    """A latitude beyond ±90 is refused, naming the stop and the field."""
    with pytest.raises(RoutingInputError) as err:
        _problem(_stop("bad", lat=121.5, lon=31.2))
    assert err.value.record == "bad"
    assert err.value.field == "location.lat"
    assert "swapped" in str(err.value)


def test_longitude_out_of_range():
    """A longitude beyond ±180 is refused."""
    with pytest.raises(RoutingInputError) as err:
        _problem(_stop("s9", lon=190.0))
    assert (err.value.record, err.value.field) == ("s9", "location.lon")


def test_swapped_pair_that_is_still_in_range_is_caught():
    """In a European city (lat 48, lon 2) a swapped pair (2, 48) is valid numbers but far away:
    the point far from the others whose swap lands among them is reported as swapped."""
    paris = LatLon(48.85, 2.35)
    stops = [
        Stop(
            f"s{i}",
            LatLon(48.85 + i * 0.01, 2.35 + i * 0.01),
            drops={TempZone.AMBIENT: Load(1, 1, 1)},
        )
        for i in range(3)
    ]
    stops.append(Stop("flipped", LatLon(2.36, 48.86), drops={TempZone.AMBIENT: Load(1, 1, 1)}))
    with pytest.raises(RoutingInputError) as err:
        Problem((Depot("wh", paris),), tuple(stops), (Vehicle("v", "wh", Load(9, 9, 9)),))
    assert err.value.record == "flipped"
    assert "swapped" in str(err.value)


def test_region_bbox_catches_swaps_and_strays():
    """With a region bounding box, a point outside it is refused; a swapped one says so."""
    bbox = (30.0, 120.0, 32.5, 122.5)
    with pytest.raises(RoutingInputError, match="outside the region"):
        _problem(_stop("far", lat=39.9, lon=116.4), region_bbox=bbox)


def test_negative_demand_names_stop_and_dimension():
    """A negative demand is refused, naming the stop and the load dimension."""
    with pytest.raises(RoutingInputError) as err:
        _problem(_stop("neg", drops={TempZone.FROZEN: Load(-5, 0, 0)}))
    assert (err.value.record, err.value.field) == ("neg", "drops.weight_g")


def test_window_closing_before_it_opens():
    """A window that closes before it opens is refused, naming the stop."""
    with pytest.raises(RoutingInputError) as err:
        _problem(_stop("w", windows=(TimeWindow(3600, 1800),)))
    assert (err.value.record, err.value.field) == ("w", "windows")


def test_matrix_shape_and_sign_checked():
    """Explicit matrices must be square, sized depots+stops, whole and non-negative."""
    depot, stop = Depot("wh"), Stop("s", drops={TempZone.AMBIENT: Load(1, 0, 0)})
    veh = (Vehicle("v", "wh", Load(5, 5, 5)),)
    with pytest.raises(RoutingInputError, match="square"):
        Problem((depot,), (stop,), veh, distance_m=[[0, 1]], travel_s=[[0, 1]])
    with pytest.raises(RoutingInputError, match="must be 2x2"):
        Problem((depot,), (stop,), veh, distance_m=[[0] * 3] * 3, travel_s=[[0] * 3] * 3)
    with pytest.raises(RoutingInputError, match="negative"):
        Problem((depot,), (stop,), veh, distance_m=[[0, -1], [1, 0]], travel_s=[[0, 1], [1, 0]])
    with pytest.raises(RoutingInputError, match="whole"):
        Problem((depot,), (stop,), veh, distance_m=[[0, 1.5], [1, 0]], travel_s=[[0, 1], [1, 0]])


def test_explicit_matrices_skip_coordinate_checks():
    """With explicit matrices, coordinates are display-only: planar x/y beyond ±90 are accepted."""
    p = Problem(
        (Depot("wh", LatLon(500, 900)),),
        (Stop("s", LatLon(700, 100), {TempZone.AMBIENT: Load(1, 0, 0)}),),
        (Vehicle("v", "wh", Load(5, 5, 5)),),
        distance_m=[[0, 3], [3, 0]],
        travel_s=[[0, 3], [3, 0]],
    )
    assert p.has_matrices


def test_unknown_depot_and_duplicate_ids():
    """A vehicle at an unknown depot, or two stops with one id, are refused by name."""
    with pytest.raises(RoutingInputError) as err:
        Problem((Depot("wh", SHANGHAI),), (), (Vehicle("v", "nowhere", Load()),))
    assert (err.value.record, err.value.field) == ("v", "start_depot")
    with pytest.raises(RoutingInputError, match="duplicate"):
        _problem(_stop("x"), _stop("x"))
