"""Events for the shop platforms: the outbox written in the transaction of each change
(`outbox`), and its delivery as signed webhooks, retried (`delivery`)."""
