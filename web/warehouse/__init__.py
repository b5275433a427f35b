"""The warehouse's desk (中心仓): a wave's pick lists (`views`), loading the trucks and receiving
at the stations by crate scan (`loading`); templates under `templates/warehouse/`."""
