"""The admin's desk: master data, users, imports, the audit log and the refund export."""
