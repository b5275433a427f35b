"""Accounts: users with a role and a scope (`models`), sign-in and sessions (`services`)."""
