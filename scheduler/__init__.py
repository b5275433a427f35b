"""groupbuy: scheduler."""
