"""Leader commission (团长佣金): rates, the ledger of what each collected line earns, its settlement
after the after-sales window, and the statements the admin exports and pays (docs/commission.md)."""
