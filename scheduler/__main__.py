"""`python -m scheduler`: the nightly scheduler with the app's configuration (GROUPBUY_*)."""

from __future__ import annotations

import argparse
import logging
import os

from fulfilment.core.config import load_settings
from fulfilment.core.db import make_engine, make_session_factory
from fulfilment.night.pipeline import PipelineConfig
from fulfilment.night.planning import PlanningOptions
from fulfilment.night.run import NightSettings

from .service import NightScheduler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__)
    parser.add_argument("--misfire-grace", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--seconds", type=float, default=3.0, help="solver seconds per station")
    parser.add_argument("--trunk-seconds", type=float, default=10.0, help="solver seconds, trunk")
    parser.add_argument(
        "--heartbeat-ttl",
        type=float,
        default=PipelineConfig.heartbeat_ttl_s,
        help="seconds without a heartbeat after which a claimer counts as dead (default 120)",
    )
    parser.add_argument(
        "--heartbeat-every",
        type=float,
        default=None,
        help="seconds between heartbeats while planning (default 20, at most a quarter of the TTL)",
    )
    parser.add_argument(
        "--sweep-every", type=int, default=300, help="seconds between sweeps (default 300)"
    )
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
        sweep_every_s=args.sweep_every,
        settings=NightSettings(
            planning=PlanningOptions(
                time_limit_s=args.seconds, trunk_time_limit_s=args.trunk_seconds
            ),
            pipeline=PipelineConfig(
                heartbeat_ttl_s=args.heartbeat_ttl,
                heartbeat_every_s=args.heartbeat_every
                or min(PipelineConfig.heartbeat_every_s, args.heartbeat_ttl / 4),
            ),
        ),
    ).run_forever()


if __name__ == "__main__":
    main()
