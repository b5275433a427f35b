"""The print hub and its downloads (web/warehouse) and `groupbuy print` (web/cli/printing)."""

from datetime import timedelta

import pytest
from portal_factories import PASSWORD, login
from printing_support import build_cut_demo, pdf_text
from sqlalchemy import select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import session_scope
from fulfilment.core.models import Wave
from fulfilment.printing.render import FORMATS
from fulfilment.waves.cycle import ensure_wave
from web import create_app


@pytest.fixture
def app(tmp_path, sqlite_template):
    sessions, wave_id, engine = build_cut_demo(tmp_path / "demo.sqlite", sqlite_template)
    engine.dispose()
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
            "TESTING": True,
        }
    )
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        create_user(
            s,
            username="wh",
            password=PASSWORD,
            role=Role.WAREHOUSE,
            region_code="SH",
            locale="zh_Hans_CN",
        )
        cut = s.get(Wave, wave_id)
        open_id = ensure_wave(s, cut.region, cut.delivery_date + timedelta(days=1)).id
    app.config["WAVES"] = (wave_id, open_id)
    yield app
    app.extensions["groupbuy"]["engine"].dispose()


def test_hub_links_every_document_and_format_and_each_downloads(app, client):
    """The hub lists each document in each format; each link answers with a file of its type
    (a PDF holding Chinese in a Chinese session)."""
    wave_id, _open = app.config["WAVES"]
    login(client, "wh")
    hub = client.get(f"/warehouse/waves/{wave_id}", headers={"Accept-Language": "zh-CN"})
    assert hub.status_code == 200
    for kind, formats in FORMATS.items():
        for fmt in formats:
            href = f"/warehouse/waves/{wave_id}/print/{kind.value}.{fmt.value}"
            assert href in hub.text
            got = client.get(href)
            assert got.status_code == 200, (href, got.text[:200])
            assert got.data, href
            if fmt.value == "pdf":
                assert got.data.startswith(b"%PDF")
                text = pdf_text(got.data)  # in the user's language
                assert "波次" in text or "网格站" in text, kind


def test_an_open_wave_says_what_is_missing(app, client):
    """The hub of a wave not cut off says so, and a download is a 409 naming the cutoff."""
    _cut, open_id = app.config["WAVES"]
    login(client, "wh")
    hub = client.get(f"/warehouse/waves/{open_id}", headers={"Accept-Language": "en"})
    assert "尚未截单" in hub.text or "not cut off yet" in hub.text
    assert "/print/" not in hub.text
    got = client.get(f"/warehouse/waves/{open_id}/print/sorting.pdf")
    assert got.status_code == 409 and "not cut off" in got.text


def test_unknown_format_is_refused(app, client):
    """A format a document does not come in is a 422 naming the field."""
    wave_id, _open = app.config["WAVES"]
    login(client, "wh")
    assert client.get(f"/warehouse/waves/{wave_id}/print/picklist.thermal80").status_code == 422
    assert client.get(f"/warehouse/waves/{wave_id}/print/nothing.pdf").status_code == 422


def test_print_command_writes_the_file_or_nothing(app, tmp_path):
    """`groupbuy print sorting --station … --format xlsx` writes the file; in English with
    --lang en; an open wave is an error naming the cutoff and writes no file."""
    wave_id, open_id = app.config["WAVES"]
    runner = app.test_cli_runner()
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        from fulfilment.core.models import GridStation

        station = s.scalars(select(GridStation.code).order_by(GridStation.code)).first()
    out = tmp_path / "sorting.xlsx"
    result = runner.invoke(
        args=["print", "sorting", "--wave", str(wave_id), "--station", station]
        + ["--format", "xlsx", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"PK")
    pdf = tmp_path / "pick.pdf"
    result = runner.invoke(
        args=["print", "picklist", "--wave", str(wave_id), "--output", str(pdf), "--lang", "en"]
    )
    assert result.exit_code == 0, result.output
    assert "Warehouse pick list" in pdf_text(pdf.read_bytes())
    missing = tmp_path / "never.pdf"
    result = runner.invoke(
        args=["print", "sorting", "--wave", str(open_id), "--output", str(missing)]
    )
    assert result.exit_code == 1 and "not cut off" in result.output
    assert not missing.exists()
