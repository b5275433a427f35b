"""The warehouse's desk (中心仓): a wave's pick lists (`views`; templates under
`templates/warehouse/`)."""
