"""Jobs for the night's process-pool tests: importable by spawned children (tests/ is on their
sys.path, as it is on the parent's)."""

from __future__ import annotations

import time
from pathlib import Path


def touch_then_sleep(path: str, seconds: float) -> str:
    """Leave a trace that this job started, then take a while."""
    Path(path).touch()
    time.sleep(seconds)
    return path
