"""groupbuy: web."""
