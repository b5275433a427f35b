"""Settings from the environment (GROUPBUY_ prefix), read when the app or a command starts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_INSTANCE_DIR = Path.cwd() / "instance"
# days after a handover in which a refund reverses the leader's commission (after-sales window)
DEFAULT_AFTER_SALES_DAYS = 7


class ConfigError(RuntimeError):
    """The configuration cannot run the service (for example no secret key in production)."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    env: str = "production"
    instance_dir: Path = field(default=DEFAULT_INSTANCE_DIR)
    # the dispatcher's map: a tile URL template ({z}/{x}/{y}) and its attribution; none by
    # default, so the map works offline with the routes and stops on a plain background
    tile_url: str = ""
    tile_attribution: str = ""
    # the after-sales window: a line's commission settles this many days after its handover
    # (GROUPBUY_AFTER_SALES_DAYS), unless a refund in the window reverses it (docs/commission.md)
    after_sales_days: int = DEFAULT_AFTER_SALES_DAYS

    @property
    def is_dev(self) -> bool:
        return self.env in ("dev", "demo", "test")


DEV_SECRET = (
    "groupbuy-dev-only-secret"  # fixed, so dev sessions survive a restart; never used in production
)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from GROUPBUY_* variables. Raises ConfigError on a production start without a secret."""
    env = dict(os.environ if environ is None else environ)
    instance_dir = Path(env.get("GROUPBUY_INSTANCE_DIR", DEFAULT_INSTANCE_DIR))
    mode = env.get("GROUPBUY_ENV", "production")
    url = env.get("GROUPBUY_DATABASE_URL") or f"sqlite:///{instance_dir / 'groupbuy.sqlite'}"
    secret = env.get("GROUPBUY_SECRET_KEY")
    if not secret:
        if mode not in ("dev", "demo", "test"):
            raise ConfigError(
                "GROUPBUY_SECRET_KEY is not set. Set it to a long random string, "
                "or set GROUPBUY_ENV=dev for a local development or demo run."
            )
        secret = DEV_SECRET
    tile_url = env.get("GROUPBUY_TILE_URL", "").strip()
    if tile_url and not tile_url.startswith(("https://", "http://")):
        raise ConfigError(f"GROUPBUY_TILE_URL must be an http(s) URL template, not {tile_url!r}")
    days = env.get("GROUPBUY_AFTER_SALES_DAYS", "").strip() or str(DEFAULT_AFTER_SALES_DAYS)
    if not (days.isascii() and days.isdigit()) or int(days) > 365:
        raise ConfigError(f"GROUPBUY_AFTER_SALES_DAYS must be a whole number 0..365, not {days!r}")
    return Settings(
        database_url=url,
        secret_key=secret,
        env=mode,
        instance_dir=instance_dir,
        tile_url=tile_url,
        tile_attribution=env.get("GROUPBUY_TILE_ATTRIBUTION", "").strip(),
        after_sales_days=int(days),
    )
