"""The night: the wave turned into routing problems and solved (`planning`), stored plan versions
(`plans`), the run ledger and its steps (`pipeline`), the RQ workers (`workers`), and the night
wired together (`run`)."""
