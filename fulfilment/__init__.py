"""groupbuy: fulfilment."""
