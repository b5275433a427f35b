"""The crate pages through the test client: a truck loaded by scans in load order, refusals
said in words, a truck not marked loaded with a crate missing; a station receiving; the
leader's arrival counted from the crates scanned."""

import re

import pytest
from crate_factories import crate_wave, publish
from portal_factories import PASSWORD, csrf_token, login
from sqlalchemy import func, select

from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from fulfilment.core.models import Leader, Product, Wave
from fulfilment.handovers.models import Handover, RouteLoaded
from fulfilment.handovers.scans import list_loading_routes, loading_states
from fulfilment.night.crate_routes import crates_of_wave
from fulfilment.waves.crates import qr_payload


def _db(app):
    return session_scope(app.extensions["groupbuy"]["sessions"])


@pytest.fixture
def wave_id(app):
    sessions = app.extensions["groupbuy"]["sessions"]
    with session_scope(sessions) as s:
        _, wave = crate_wave(s)
        for name, role, leader, region in [
            ("wh", "warehouse", None, "SH"),
            ("leader1", "leader", "L1", None),
        ]:
            create_user(
                s,
                username=name,
                password=PASSWORD,
                role=role,
                leader_code=leader,
                region_code=region,
            )
        wave_id = wave.id
    publish(sessions, wave_id)
    return wave_id


def _post(client, path, data, *, token_from):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, token_from)})


def _truck(app, wave_id):
    with _db(app) as s:
        route = list_loading_routes(s, wave=s.get(Wave, wave_id))[0][0]
        return route.id, [c for c, _ in loading_states(s, route_id=route.id)]


def test_loading_a_truck_by_scans_in_load_order(app, client, wave_id):
    """The truck's page lists its crates in load order; a scan is recorded with a message, a
    second scan is refused saying when and by whom, and the truck is not marked loaded while a
    crate is missing; recorded missing with a reason, it is."""
    assert login(client, "wh").status_code == 302
    route_id, crates = _truck(app, wave_id)
    page = client.get(f"/waves/{wave_id}/loading")
    assert page.status_code == 200 and f"/loading/{route_id}" in page.text
    page = client.get(f"/loading/{route_id}")
    codes = re.findall(r'<span class="nowrap">([^<]+)</span>', page.text)
    assert codes == [c.code for c in crates]  # in load order
    first = crates[0]
    done = _post(
        client,
        f"/loading/{route_id}/scan",
        {"code": qr_payload(first.id)},
        token_from=f"/loading/{route_id}",
    )
    assert done.status_code == 302
    assert f"Loaded: crate {first.code} (load number 1)." in client.get(f"/loading/{route_id}").text
    again = _post(
        client, f"/loading/{route_id}/scan", {"code": first.code}, token_from=f"/loading/{route_id}"
    )
    assert again.status_code == 409
    assert f"Crate {first.code} was already scanned at" in again.text and "by wh." in again.text
    for crate in crates[1:-1]:
        _post(
            client,
            f"/loading/{route_id}/scan",
            {"code": crate.code.lower()},  # typed in lower case
            token_from=f"/loading/{route_id}",
        )
    refused = _post(client, f"/loading/{route_id}/done", {}, token_from=f"/loading/{route_id}")
    assert refused.status_code == 409 and crates[-1].code in refused.text
    with _db(app) as s:
        assert s.scalar(select(func.count()).select_from(RouteLoaded)) == 0
    _post(
        client,
        f"/loading/{route_id}/missing",
        {"crate": str(crates[-1].id), "reason": "纸箱破损"},
        token_from=f"/loading/{route_id}",
    )
    marked = _post(client, f"/loading/{route_id}/done", {}, token_from=f"/loading/{route_id}")
    assert marked.status_code == 302
    with _db(app) as s:
        loaded = s.scalars(select(RouteLoaded)).one()
        assert (loaded.scanned, loaded.missing) == (len(crates) - 1, 1)


def test_a_crate_of_another_station_is_refused_at_receiving(app, client, wave_id):
    """At a station that is not the crate's, the scan is refused naming the crate's station."""
    from fulfilment.core.models import GridStation

    with _db(app) as s:
        gs1 = s.scalars(select(GridStation).where(GridStation.code == "GS1")).one()
        s.add(
            GridStation(
                region_id=gs1.region_id,
                warehouse_id=gs1.warehouse_id,
                code="GS2",
                name="Station 2",
                lat=31.3,
                lon=121.5,
            )
        )
        crate = crates_of_wave(s, wave_id, contents=False)[0]
    assert login(client, "wh").status_code == 302
    path = f"/waves/{wave_id}/receiving/GS2"
    refused = _post(client, path, {"code": crate.code}, token_from=path)
    assert refused.status_code == 409
    assert f"Crate {crate.code} belongs to station Station 1, not to this one." in refused.text
    path = f"/waves/{wave_id}/receiving/GS1"
    assert _post(client, path, {"code": crate.code}, token_from=path).status_code == 302
    with _db(app) as s:
        assert s.scalar(select(func.count()).select_from(Handover)) == 1


def test_the_arrival_counts_start_from_the_crates_scanned(app, client, wave_id):
    """Before any scan the counts are as expected; after scanning two of L1's crates the counts
    are what those two hold, and the form stays editable; another point's crate is refused."""
    with _db(app) as s:
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        crates = crates_of_wave(s, wave_id, leader=l1.id)
        other = next(c for c in crates_of_wave(s, wave_id, contents=False) if c.leader_id != l1.id)
        pids = {p.sku: p.id for p in s.scalars(select(Product))}
    assert login(client, "leader1").status_code == 302
    page = client.get("/leader/arrival")
    assert f"Crates: 0 of {len(crates)} scanned" in page.text
    assert f'name="count-{pids["APPLE"]}" value="120"' in page.text
    for crate in crates[:2]:
        done = _post(
            client, "/leader/arrival/crates", {"code": crate.code}, token_from="/leader/arrival"
        )
        assert done.status_code == 302
    arrived: dict[str, int] = {}
    for crate in crates[:2]:
        for bag in crate.contents:
            for line in bag.lines:
                arrived[line.sku] = arrived.get(line.sku, 0) + line.quantity
    page = client.get("/leader/arrival")
    assert f"Crates: 2 of {len(crates)} scanned" in page.text
    for sku in ("APPLE", "MILK", "PRAWN"):
        assert f'name="count-{pids[sku]}" value="{arrived.get(sku, 0)}" required' in page.text
    refused = _post(
        client, "/leader/arrival/crates", {"code": other.code}, token_from="/leader/arrival"
    )
    assert refused.status_code == 409
    assert f"Crate {other.code} is for another pickup point" in refused.text


def test_the_crates_commands_list_and_scan_once(app, runner, wave_id):
    """`groupbuy crates list` prints each crate with its truck and load number in the route's
    load order; `crates scan loaded` records once and refuses the second scan, exit status 1."""
    route_id, crates = _truck(app, wave_id)
    listed = runner.invoke(
        args=["crates", "list", "--wave", str(wave_id), "--route", str(route_id)]
    )
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.output.splitlines()[1:]]
    assert [r[0] for r in rows] == [c.code for c in crates]
    assert [r[-1] for r in rows] == [str(n) for n in range(1, len(crates) + 1)]
    args = ["crates", "scan", "loaded", crates[0].code, "--user", "wh", "--route", str(route_id)]
    first = runner.invoke(args=args)
    assert first.exit_code == 0 and f"loaded: crate {crates[0].code}" in first.output
    second = runner.invoke(args=args)
    assert second.exit_code == 1 and "already" in second.output and "by wh" in second.output
