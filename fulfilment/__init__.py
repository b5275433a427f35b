"""groupbuy: fulfilment."""

# Areas with their own modules register their tables on the shared metadata when the package loads
# (migrations and the schema test compare against all of it).
from . import fleet, pipeline, plans  # noqa: E402, F401
