"""The shared base under every area: the engine and sessions, settings, errors, the audit log,
privacy masks, CSV reading, the migrations, and the tables every area reads (`models`)."""
