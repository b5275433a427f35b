"""Masking of personal data for anything printed or logged."""

from __future__ import annotations


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678; short numbers keep only their last two digits."""
    digits = phone.strip()
    if len(digits) >= 7:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * max(len(digits) - 2, 0) + digits[-2:]


def mask_name(name: str) -> str:
    """张小明 → 张**; Alice → A****."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(len(name) - 1, 1)
