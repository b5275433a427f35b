"""groupbuy: routing."""
