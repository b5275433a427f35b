"""The dispatcher's desk (调度): a wave's plan versions, its figures, the routes on a map and in a
table (`views`; templates under `templates/dispatch/`, Leaflet and the map script under
`static/`)."""
