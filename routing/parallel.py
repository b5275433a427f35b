"""Solving outside the caller's process: the solver holds the GIL for its whole time limit.

`solve_in_subprocess` runs `plan_routes` in a spawned child with a deadline and clean
cancellation (the child is terminated). `plan_routes_on_cores` runs the search portfolio on
several cores and keeps the best plan. `solve_many` solves independent problems in a pool.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from .model import Plan, Problem
from .search import PORTFOLIO, SearchConfig
from .solver import plan_routes

__all__ = ["SolveCancelled", "SolveDeadlineExceeded", "SolveFailed", "SolveHandle",
           "plan_routes_on_cores", "solve_in_subprocess", "solve_many"]

_SPAWN = mp.get_context("spawn")  # fork would copy the parent's threads and locks (Flask, DB)


class SolveFailed(RuntimeError):
    """The child process raised; the message carries its traceback."""


class SolveDeadlineExceeded(TimeoutError):
    """No plan before the deadline: the child was terminated."""


class SolveCancelled(RuntimeError):
    """`cancel()` was called before a plan came back."""


def _child(conn, problem: Problem, kwargs: dict[str, Any]) -> None:
    try:
        plan = plan_routes(problem, **kwargs)
        conn.send(("ok", plan))
    except BaseException:  # everything goes back to the parent, which decides
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class SolveHandle:
    """A solve running in a child process. `result()` waits, `cancel()` ends it."""

    def __init__(self, problem: Problem, *, deadline_s: float | None, **kwargs: Any):
        self._recv, send = _SPAWN.Pipe(duplex=False)
        self._process = _SPAWN.Process(target=_child, args=(send, problem, kwargs), daemon=True)
        self._process.start()
        send.close()
        self._started = time.monotonic()
        self._deadline = None if deadline_s is None else self._started + deadline_s
        self._outcome: tuple[str, Any] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def done(self) -> bool:
        return self._outcome is not None or self._poll(0)

    def result(self, timeout: float | None = None) -> Plan:
        """The plan; TimeoutError if `timeout` passes first (the solve goes on), or
        SolveDeadlineExceeded once the deadline passes (the solve is ended)."""
        wait_until = None if timeout is None else time.monotonic() + timeout
        limits = [t for t in (wait_until, self._deadline) if t is not None]
        until = min(limits) if limits else None
        if not self._poll(None if until is None else max(0.0, until - time.monotonic())):
            if self._deadline is not None and time.monotonic() >= self._deadline - 1e-3:
                self.cancel()
                raise SolveDeadlineExceeded(f"no plan within {self._deadline - self._started:.1f} s")
            raise TimeoutError("plan not ready yet")
        assert self._outcome is not None
        kind, value = self._outcome
        if kind == "ok":
            return value
        if kind == "cancelled":
            raise SolveCancelled("the solve was cancelled")
        raise SolveFailed(value)

    def cancel(self) -> None:
        """End the child now (SIGTERM, then SIGKILL); later `result()` raises SolveCancelled."""
        if self._outcome is None:
            self._outcome = ("cancelled", None)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(2)
            if self._process.is_alive():
                self._process.kill()
        self._process.join(2)
        self._recv.close()

    def _poll(self, timeout: float | None) -> bool:
        if self._outcome is not None:
            return True
        try:
            ready = self._recv.poll(timeout)
        except (OSError, EOFError):
            ready = False
        if not ready:
            if not self._process.is_alive() and self._process.exitcode is not None:
                self._outcome = ("error", f"solver process died (exit code {self._process.exitcode})")
                return True
            return False
        try:
            self._outcome = self._recv.recv()
        except EOFError:
            self._outcome = ("error", f"solver process died (exit code {self._process.exitcode})")
        self._process.join(2)
        return True

    def __enter__(self) -> SolveHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            self.cancel()


def solve_in_subprocess(problem: Problem, *, time_limit_s: float, deadline_s: float | None = None,
                        seed: int = 0, **kwargs: Any) -> SolveHandle:
    """Start `plan_routes` in a child process; `deadline_s` (wall, from now) bounds the wait.

    A sensible deadline is the time limit plus the start-up and matrix building, e.g. +10 s.
    """
    return SolveHandle(problem, deadline_s=deadline_s, time_limit_s=time_limit_s, seed=seed,
                       **kwargs)


def _better(a: Plan, b: Plan) -> bool:
    return (len(a.unassigned), a.cost.total) < (len(b.unassigned), b.cost.total)


def plan_routes_on_cores(problem: Problem, *, time_limit_s: float, cores: int = 2, seed: int = 0,
                         portfolio: Sequence[SearchConfig] = PORTFOLIO, **kwargs: Any) -> Plan:
    """Run `cores` strategies of the portfolio side by side, one process each; best plan wins.

    The returned plan's time to first solution is the earliest of the runs.
    """
    configs = [portfolio[(seed + i) % len(portfolio)] for i in range(cores)]
    if cores <= 1:
        return plan_routes(problem, time_limit_s=time_limit_s, seed=seed, search=configs[0],
                           **kwargs)
    with ProcessPoolExecutor(max_workers=cores, mp_context=_SPAWN) as pool:
        futures = [pool.submit(plan_routes, problem, time_limit_s=time_limit_s, seed=seed + i,
                               search=c, **kwargs) for i, c in enumerate(configs)]
        plans = [f.result() for f in futures]
    best = plans[0]
    for plan in plans[1:]:
        if _better(plan, best):
            best = plan
    firsts = [p.time_to_first_solution_s for p in plans if p.time_to_first_solution_s is not None]
    return replace(best, time_to_first_solution_s=min(firsts) if firsts else None)


def solve_many(problems: Mapping[str, Problem], *, time_limit_s: float, workers: int = 2,
               seed: int = 0) -> dict[str, Plan]:
    """Independent problems (e.g. the last mile of each station) in a pool of worker processes."""
    if workers <= 1 or len(problems) <= 1:
        return {k: plan_routes(p, time_limit_s=time_limit_s, seed=seed) for k, p in problems.items()}
    with ProcessPoolExecutor(max_workers=min(workers, len(problems)), mp_context=_SPAWN) as pool:
        futures = {k: pool.submit(plan_routes, p, time_limit_s=time_limit_s, seed=seed)
                   for k, p in problems.items()}
        return {k: f.result() for k, f in futures.items()}
