"""Orders: placing and cancelling with idempotency keys (`intake`), the CSV import (`importer`)
and the export of refunds owed (`refunds`)."""
