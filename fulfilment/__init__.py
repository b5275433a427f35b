"""groupbuy: fulfilment."""

# Every module that declares tables, so that Base.metadata (migrations, the schema test) has them all.
from . import models, platforms  # noqa: F401
