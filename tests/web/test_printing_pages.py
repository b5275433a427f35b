"""The print hub and its downloads (web/warehouse) and `groupbuy print` (web/cli/printing)."""

import queue
import socket
import threading
from datetime import timedelta

import pytest
from escpos_reader import read_escpos
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
        create_user(
            s,
            username="wh-en",
            password=PASSWORD,
            role=Role.WAREHOUSE,
            region_code="SH",
            locale="en",
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


@pytest.mark.parametrize(
    ("user", "heading", "hub_label"),
    [("wh", "分拣单", "热敏打印机 80mm"), ("wh-en", "Sorting list", "ESC/POS printer 80 mm")],
)
def test_hub_offers_escpos_downloads(app, client, user, heading, hub_label):
    """The hub offers sorting lists and labels as ESC/POS, labelled in the user's language; the
    download is a printer file (application/octet-stream, .prn) that starts with ESC @ and
    prints the user's language."""
    wave_id, _open = app.config["WAVES"]
    login(client, user)
    hub = client.get(f"/warehouse/waves/{wave_id}")
    assert hub_label in hub.text
    for kind in ("sorting", "labels"):
        href = f"/warehouse/waves/{wave_id}/print/{kind}.escpos80"
        assert href in hub.text
        got = client.get(href)
        assert got.status_code == 200
        assert got.mimetype == "application/octet-stream"
        assert got.headers["Content-Disposition"].startswith("attachment;")
        assert got.headers["Content-Disposition"].endswith('.80mm.prn"')
        assert got.data.startswith(b"\x1b@\x1c&")
        printout = read_escpos(got.data)
        assert printout.cuts == len(printout.tickets) > 1
    first = read_escpos(client.get(f"/warehouse/waves/{wave_id}/print/sorting.escpos58").data)
    assert first.tickets[0].lines[0].text.startswith(heading)


class RawPrinter:
    """A network printer for the tests: listens on 127.0.0.1 (port 9100's part), says a status
    byte when a client connects, as printers with status back do, and keeps each job it is
    sent, read until the client closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.jobs: queue.Queue[bytes] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(10)
                conn.sendall(b"\x14")
                chunks = []
                while data := conn.recv(65536):
                    chunks.append(data)
                self.jobs.put(b"".join(chunks))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def printer():
    raw = RawPrinter()
    yield raw
    raw.close()


def test_print_command_sends_escpos_to_a_network_printer(app, tmp_path, printer):
    """`groupbuy print labels --format escpos80 --printer tcp://127.0.0.1:PORT` sends the
    printer exactly the bytes `--output` writes, once, and says how many it sent."""
    wave_id, _open = app.config["WAVES"]
    runner = app.test_cli_runner()
    out = tmp_path / "labels.prn"
    args = ["print", "labels", "--wave", str(wave_id), "--format", "escpos80"]
    result = runner.invoke(args=args + ["--output", str(out)])
    assert result.exit_code == 0, result.output
    address = f"tcp://127.0.0.1:{printer.port}"
    result = runner.invoke(args=args + ["--printer", address])
    assert result.exit_code == 0, result.output
    job = printer.jobs.get(timeout=10)
    assert job == out.read_bytes() and job.startswith(b"\x1b@")
    assert f"sent {len(job)} bytes to {address}" in result.output
    assert printer.jobs.empty()


def test_print_command_refuses_what_a_printer_cannot_take(app, tmp_path, printer):
    """A closed port is an error naming the printer's address (exit 1), with no file left
    anywhere; a PDF or thermal text to a printer is refused naming --format, and --output
    with --printer (or neither) is refused, before anything is sent."""
    wave_id, _open = app.config["WAVES"]
    runner = app.test_cli_runner()
    files = sorted(tmp_path.iterdir())
    with socket.create_server(("127.0.0.1", 0)) as s:  # a port that was free, and is closed
        closed = s.getsockname()[1]
    args = ["print", "sorting", "--wave", str(wave_id)]
    result = runner.invoke(
        args=args + ["--format", "escpos58", "--printer", f"tcp://127.0.0.1:{closed}"]
    )
    assert result.exit_code == 1
    assert f"printer tcp://127.0.0.1:{closed}: connection refused" in result.output
    assert "nothing was sent" in result.output
    assert sorted(tmp_path.iterdir()) == files
    good = f"tcp://127.0.0.1:{printer.port}"
    for fmt in ("pdf", "thermal80"):
        result = runner.invoke(args=args + ["--format", fmt, "--printer", good])
        assert result.exit_code == 2
        assert "'--format'" in result.output and "cannot go to a printer" in result.output
    both = args + ["--format", "escpos80", "--printer", good, "--output", str(tmp_path / "x")]
    for wrong in (both, args + ["--format", "escpos80"]):
        result = runner.invoke(args=wrong)
        assert result.exit_code == 2 and "either --output FILE or --printer" in result.output
    result = runner.invoke(args=args + ["--format", "escpos80", "--printer", "lpt1"])
    assert result.exit_code == 2 and "'--printer'" in result.output
    assert sorted(tmp_path.iterdir()) == files
    assert printer.jobs.empty()
