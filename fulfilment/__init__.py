"""groupbuy: fulfilment."""

# The tables of the areas built on the foundation's models join the same metadata whichever
# module is imported first, so that migrations and the schema test see every table.
from . import accounts, arrivals, fleet, models, pickups, pipeline, plans, platforms  # noqa: F401
