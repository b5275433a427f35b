"""Pickup points (自提点): the point and its wave (`point`), the arrival check (`arrivals`, 到货确认),
pickups by code (`pickups`, 核销) and the Today page (`day`), in that order of who imports whom."""
