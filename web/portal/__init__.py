"""The leader's desk (团长, 自提点): Today, the arrival check, pickups by code, uncollected orders,
and arrival photos (`views`), the leader's earnings (`earnings`); templates under
`templates/leader/`."""
