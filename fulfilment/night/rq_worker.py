"""RQ's workers, quick to stop: `groupbuy worker` and `groupbuy webhooks worker` run `Worker`;
a test that runs the jobs in its own process runs `SimpleWorker`.

RQ (3.0) listens for commands (stop, kill a job) on a pub/sub thread that reads with a 60 s
timeout, and at exit unsubscribes and then stops the thread; redis-py 8 then waits for the
thread. When the thread has already read the unsubscribe's reply it is no longer subscribed and
waits out its whole 60 s for a subscription that never comes: now and then (3 exits in 100 on a
quiet machine) a burst, a SIGTERM or a deploy took a minute. Here the thread reads with a 1 s
timeout (RQ 2.x read every 0.2 s): at most a second at exit; an idle read costs no round trip.
"""

from __future__ import annotations

from rq import SimpleWorker as _SimpleWorker
from rq import Worker as _Worker
from rq.worker.base import BaseWorker

COMMAND_READ_S = 1.0


def _subscribe(worker: BaseWorker) -> None:
    """RQ's `subscribe`, with the pub/sub thread reading every `COMMAND_READ_S`."""
    worker.log.info("Worker %s: subscribing to channel %s", worker.name, worker.pubsub_channel_name)
    worker.pubsub = worker.connection.pubsub()
    worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
    worker.pubsub_thread = worker.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ: None
        sleep_time=COMMAND_READ_S,
        daemon=True,
        exception_handler=worker._pubsub_exception_handler,
    )


class Worker(_Worker):
    """A forking RQ worker whose exit takes at most a second."""

    def subscribe(self) -> None:
        _subscribe(self)


class SimpleWorker(_SimpleWorker):
    """An RQ worker running its jobs in its own process, whose exit takes at most a second."""

    def subscribe(self) -> None:
        _subscribe(self)
