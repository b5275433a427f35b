"""`python -m scheduler`: the nightly scheduler with the app's configuration (GROUPBUY_*)."""

from __future__ import annotations

import argparse
import logging
import os

from fulfilment.core.config import load_settings
from fulfilment.core.db import make_engine, make_session_factory
from fulfilment.night.planning import PlanningOptions
from fulfilment.night.run import NightSettings

from .service import NightScheduler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__)
    parser.add_argument("--misfire-grace", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--seconds", type=float, default=3.0, help="solver seconds per station")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("GROUPBUY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    NightScheduler(
        sessions,
        misfire_grace_s=args.misfire_grace,
        settings=NightSettings(planning=PlanningOptions(time_limit_s=args.seconds)),
    ).run_forever()


if __name__ == "__main__":
    main()
