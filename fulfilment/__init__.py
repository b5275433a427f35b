"""groupbuy: fulfilment, one sub-package per area (docs/architecture.md draws them).

The areas' tables join one metadata whichever module is imported first, so that migrations and
the schema test see every table: importing the package imports each area's models.
"""

import fulfilment.accounts.models
import fulfilment.catalogue.fleet
import fulfilment.commission.models
import fulfilment.core.models
import fulfilment.events.models
import fulfilment.handovers.models
import fulfilment.night.loading
import fulfilment.night.pipeline
import fulfilment.night.plans
import fulfilment.platforms.clients
import fulfilment.points.arrivals
import fulfilment.points.pickups
import fulfilment.waves.crates  # noqa: F401
