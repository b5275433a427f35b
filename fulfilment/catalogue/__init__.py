"""The network and the catalogue: regions, the warehouse, grid stations, leaders and their pickup
points (`sites`), the fleet (`fleet`). The tables of regions, sites, products and deals are in
`fulfilment.core.models`."""
