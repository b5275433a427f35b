"""A cut-off demo wave for the printing tests, built once per module on SQLite, and the
helpers that read printed output back (PDF text, fonts, pages as PNG)."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.demo.city import build_demo
from fulfilment.waves.cutoff import cut_off_wave

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def build_cut_demo(
    path: Path, template: Path, *, leaders: int = 12, orders: int = 150, publish: bool = True
):
    """A demo city on a copy of the migrated SQLite template, its wave cut off (crates packed)
    and, with publish, its plan published (crates on routes): (sessions, wave id, engine)."""
    shutil.copy(template, path)
    engine = make_engine(f"sqlite:///{path}")
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        summary = build_demo(s, seed=5, leaders=leaders, orders=orders, now=NOW)
    with session_scope(sessions) as s:
        wave, _ = cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=summary.delivery_date, now=NOW
        )
        wave_id = wave.id
    if publish:
        from crate_factories import publish as publish_plan

        publish_plan(sessions, wave_id, now=NOW)
    return sessions, wave_id, engine


def pdf_pages_text(content: bytes) -> list[str]:
    """Each page's text as pypdf extracts it. pypdf reads fpdf2's CID font (its ToUnicode map
    has two-byte codes under a custom encoding) as a NUL before every character; poppler's
    pdftotext and browsers read it plainly, so the NULs are dropped, nothing else."""
    from pypdf import PdfReader

    return [p.extract_text().replace("\x00", "") for p in PdfReader(io.BytesIO(content)).pages]


def pdf_text(content: bytes) -> str:
    return "\n".join(pdf_pages_text(content))


def pdf_fonts(content: bytes) -> list[tuple[str, bool]]:
    """Every font the PDF uses, with whether its program is embedded (a FontFile stream)."""
    from pypdf import PdfReader

    out = []
    for page in PdfReader(io.BytesIO(content)).pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for ref in fonts.values():
            font = ref.get_object()
            descendants = font.get("/DescendantFonts")
            leaf = descendants[0].get_object() if descendants else font
            descriptor = leaf.get("/FontDescriptor")
            embedded = descriptor is not None and any(
                k in descriptor.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            out.append((str(font.get("/BaseFont")), embedded))
    return out


def pdf_page_pngs(content: bytes, folder: Path, name: str, *, last: int = 1) -> list[Path]:
    """The first pages rendered by poppler's pdftoppm (Debian's poppler-utils) at 60 dpi."""
    pdf = folder / f"{name}.pdf"
    pdf.write_bytes(content)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", str(last), str(pdf), str(folder / name)],
        check=True,
    )
    return sorted(folder.glob(f"{name}-*.png"))


def ink_share(png: Path) -> float:
    """The share of a page's pixels that are dark: a blank page has none."""
    from PIL import Image

    image = Image.open(png).convert("L")
    dark = sum(image.histogram()[:128])
    return dark / (image.width * image.height)
