"""Shop platforms: API clients and their tokens, the orders they submit and cancel, and what they
read back, published arrival times included (`clients`)."""
