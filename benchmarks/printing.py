"""A whole wave's printed documents, timed: the 2,000-leader / 100,000-order demo wave with its
published plan.

    python -m benchmarks.printing [--leaders 2000] [--orders 100000] [--workers 2]
        [--backend postgres|sqlite] [--weasyprint-stations 2]

Builds the demo city (a fresh PostgreSQL schema by default), runs its night (cutoff, crates,
plan, publish; short solver limits: the plan's quality is not what is measured), then prints
with fpdf2 (fulfilment/printing): the warehouse and station pick lists, every sorting list (one
batch PDF per station), every crate label, every route sheet and the loading list, the purchase
list. Prints pages, seconds and pages/s per kind, the crates, peak RSS, and when the first
station's sorting lists were ready; then the same first stations' sorting lists through
WeasyPrint (HTML + print CSS → PDF, the Noto CJK font embedded), the library not chosen.
Station batches go to `--workers` processes (each its own connection), as two cores allow.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime

from benchmarks._postgres import DEFAULT_PG, fresh_schema

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
LOCALE = "zh_Hans_CN"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gettext():
    from babel.support import Translations

    from web.i18n import TRANSLATIONS

    return Translations.load(str(TRANSLATIONS), [LOCALE]).gettext


def build(url: str, leaders: int, orders: int, seconds: float) -> tuple[int, float]:
    """The demo city, its night run to a published plan; (wave id, seconds)."""
    from sqlalchemy import select

    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.core.models import Wave
    from fulfilment.demo.city import build_demo
    from fulfilment.night.planning import PlanningOptions
    from fulfilment.night.run import NightSettings, run_night
    from routing import LocalRunner

    started = time.perf_counter()
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        summary = build_demo(s, seed=42, leaders=leaders, orders=orders, now=NOW)
    settings = NightSettings(
        planning=PlanningOptions(time_limit_s=seconds, trunk_time_limit_s=2 * seconds)
    )
    run_night(
        sessions,
        region_code="SH",
        delivery_date=summary.delivery_date,
        runner=LocalRunner(workers=2),
        settings=settings,
    )
    with session_scope(sessions) as s:
        wave_id = s.scalars(
            select(Wave.id).where(Wave.delivery_date == summary.delivery_date)
        ).one()
    engine.dispose()
    return wave_id, time.perf_counter() - started


def _render(url: str, kind: str, wave_id: int, station: str | None, fmt: str = "pdf"):
    """One document in this process: (pages, bytes, seconds, peak RSS MB of this process, CPU
    seconds of this process: on a shared machine the wall time says more about the others)."""
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.printing.render import Format, Kind, render_document

    started, cpu = time.perf_counter(), time.process_time()
    engine = _engines.get(url) or _engines.setdefault(url, make_engine(url))
    with session_scope(make_session_factory(engine)) as s:
        rendered = render_document(
            s,
            kind=Kind(kind),
            wave_id=wave_id,
            format=Format(fmt),
            _=_gettext(),
            locale=LOCALE,
            station_code=station,
        )
    return (
        rendered.pages or 0,
        len(rendered.content),
        time.perf_counter() - started,
        _rss_mb(),
        time.process_time() - cpu,
    )


_engines: dict = {}


def _weasyprint_station(url: str, wave_id: int, station: str) -> tuple[int, float, float]:
    """The same station's sorting lists as our HTML (print CSS), through WeasyPrint."""
    from weasyprint import HTML

    started = time.perf_counter()
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.printing.render import Format, Kind, render_document

    engine = _engines.get(url) or _engines.setdefault(url, make_engine(url))
    with session_scope(make_session_factory(engine)) as s:
        html = render_document(
            s,
            kind=Kind.SORTING,
            wave_id=wave_id,
            format=Format.HTML,
            _=_gettext(),
            locale=LOCALE,
            station_code=station,
        ).content
    document = HTML(string=html.decode("utf-8")).render()
    document.write_pdf()
    return len(document.pages), time.perf_counter() - started, _rss_mb()


def run(url: str, wave_id: int, workers: int, weasy_stations: int) -> None:
    from sqlalchemy import func, select

    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.models import GridStation, Wave
    from fulfilment.printing.render import FORMATS, Kind

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as s:
        wave = s.get(Wave, wave_id)
        stations = s.scalars(
            select(GridStation.code)
            .where(GridStation.region_id == wave.region_id)
            .order_by(GridStation.code)
        ).all()
        crates = 0
        try:
            from fulfilment.waves.crates import Crate

            crates = s.scalar(select(func.count()).where(Crate.wave_id == wave_id)) or 0
        except ImportError:
            pass
    engine.dispose()

    per_station = {Kind.SORTING.value, Kind.LABELS.value} & {k.value for k in FORMATS}
    jobs = [(k.value, None) for k in FORMATS if k.value not in per_station]
    # the first station's sorting lists first: how soon the sorters can start
    jobs = [(Kind.SORTING.value, stations[0])] + jobs
    jobs += [(Kind.SORTING.value, st) for st in stations[1:]]
    jobs += [(kind, st) for kind in sorted(per_station - {Kind.SORTING.value}) for st in stations]

    results: dict[str, list] = {}
    started = time.perf_counter()
    first_ready = None
    first_cpu = 0.0
    worker_rss = 0.0
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [(kind, st, pool.submit(_render, url, kind, wave_id, st)) for kind, st in jobs]
        for kind, _station, future in futures:
            pages, size, secs, rss, cpu = future.result()
            if first_ready is None and kind == Kind.SORTING.value:
                first_ready = time.perf_counter() - started
                first_cpu = cpu
            worker_rss = max(worker_rss, rss)
            results.setdefault(kind, []).append((pages, size, secs, cpu))
    total = time.perf_counter() - started

    print(f"\nfpdf2, {workers} worker process(es), {len(stations)} stations, {crates} crates")
    print(
        f"{'kind':14} {'files':>5} {'pages':>7} {'MB':>7} {'worker s':>9} {'CPU s':>7}"
        f" {'pages/s':>8} {'pages/CPU s':>11}"
    )
    for kind, rows in results.items():
        pages = sum(r[0] for r in rows)
        secs = sum(r[2] for r in rows)
        cpu_s = sum(r[3] for r in rows)
        mb = sum(r[1] for r in rows) / 1e6
        print(
            f"{kind:14} {len(rows):5d} {pages:7d} {mb:7.1f} {secs:9.1f} {cpu_s:7.1f}"
            f" {pages / secs:8.1f} {pages / cpu_s:11.1f}"
        )
    all_pages = sum(r[0] for rows in results.values() for r in rows)
    all_cpu = sum(r[3] for rows in results.values() for r in rows)
    print(
        f"all documents: {all_pages} pages in {total:.1f} s wall ({all_pages / total:.1f} pages/s),"
        f" {all_cpu:.1f} CPU s in the workers (on {workers} idle cores about"
        f" {all_cpu / workers:.0f} s); first station's sorting lists ready after"
        f" {first_ready:.1f} s wall ({first_cpu:.1f} CPU s);"
        f" peak RSS {worker_rss:.0f} MB a worker, {_rss_mb():.0f} MB the parent"
    )

    if weasy_stations:
        try:
            import weasyprint  # noqa: F401
        except ImportError:
            print("WeasyPrint is not installed (pip install -e '.[bench]'): no comparison")
            return
        sample = stations[:weasy_stations]
        fpdf_rows = results[Kind.SORTING.value][:weasy_stations]
        with ProcessPoolExecutor(max_workers=1) as pool:
            weasy = [pool.submit(_weasyprint_station, url, wave_id, st).result() for st in sample]
        fp, fs = sum(r[0] for r in fpdf_rows), sum(r[2] for r in fpdf_rows)
        wp, ws = sum(r[0] for r in weasy), sum(r[1] for r in weasy)
        print(f"\nthe same sorting lists (stations {', '.join(sample)}), one process each:")
        print(f"  fpdf2       {fp:5d} pages {fs:7.1f} s {fp / fs:7.1f} pages/s")
        print(
            f"  WeasyPrint  {wp:5d} pages {ws:7.1f} s {wp / ws:7.1f} pages/s,"
            f" peak RSS {max(r[2] for r in weasy):.0f} MB"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leaders", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0, help="solver limit per problem")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("GROUPBUY_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--weasyprint-stations", type=int, default=2)
    parser.add_argument(
        "--existing", metavar="URL", help="print a database built before (with --wave)"
    )
    parser.add_argument("--wave", type=int, help="the wave of --existing")
    args = parser.parse_args(argv)
    if args.existing:
        run(args.existing, args.wave, args.workers, args.weasyprint_stations)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return

    drop = None
    if args.backend == "postgres":
        url, drop = fresh_schema(args.postgres_url)
    else:
        folder = tempfile.mkdtemp(prefix="gb-print-")
        url = f"sqlite:///{folder}/bench.sqlite"
    try:
        wave_id, built_s = build(url, args.leaders, args.orders, args.seconds)
        print(
            f"built {args.leaders} leaders / {args.orders} orders, night run and published in"
            f" {built_s:.0f} s ({args.backend})"
        )
        run(url, wave_id, args.workers, args.weasyprint_stations)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if drop:
            drop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
