"""Handovers (交接): each crate scanned once per step (loaded at the warehouse, received at a grid
station, delivered at the pickup point), and routes marked loaded (`models`, `scans`)."""
