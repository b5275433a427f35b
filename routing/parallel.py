"""Solving outside the caller's process: the solver holds the GIL for its whole time limit.

`solve_in_subprocess` runs `plan_routes` in a spawned child with a deadline and clean
cancellation (the child is terminated). `plan_routes_on_cores` runs PyVRP and OR-Tools side by
side (with only a break in the way, PyVRP's break path on each core with its own seed; when PyVRP
does not fit otherwise, the OR-Tools portfolio) and keeps the better re-checked plan.
`PoolRunner` solves independent problems in a pool, streaming each plan as it finishes (the
two echelons' default runner), `LocalRunner` likewise with a whole limit per problem (the
night's); `solve_many` collects them. `time_limit_s` is the whole call's budget:
children are given an absolute wall-clock deadline, so process start-up comes out of it.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from .model import Plan, Problem
from .planner import better, plan_routes
from .pyvrp_engine import BREAKS_ONLY, misfit
from .search import PORTFOLIO, SearchConfig

__all__ = [
    "LocalRunner",
    "PoolRunner",
    "SolveCancelled",
    "SolveDeadlineExceeded",
    "SolveFailed",
    "SolveHandle",
    "pick",
    "ortools_then_pyvrp",
    "plan_routes_on_cores",
    "plan_until",
    "solve_in_subprocess",
    "solve_many",
]

_SPAWN = mp.get_context("spawn")  # fork would copy the parent's threads and locks (Flask, DB)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent_pid: int) -> None:
    """Make this (spawned) process die with the one that started it: a `pipeline run` or a
    scheduler killed with SIGKILL must not leave its solver processes running on (re-parented,
    ~120 MB each). On Linux the kernel does it (`prctl(PR_SET_PDEATHSIG, SIGKILL)`; it fires when
    the thread that started the child ends, and every pool here is used and closed by the thread
    that made it); elsewhere a daemon thread polls the parent's pid. Run as the pools'
    initializer and first thing in `solve_in_subprocess`'s child."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        except (OSError, AttributeError):
            _watch_parent(parent_pid)
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of spawned processes that die with this one."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_SPAWN,
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )


class SolveFailed(RuntimeError):
    """The child process raised; the message carries its traceback."""


class SolveDeadlineExceeded(TimeoutError):
    """No plan before the deadline: the child was terminated."""


class SolveCancelled(RuntimeError):
    """`cancel()` was called before a plan came back."""


def _child(conn, problem: Problem, kwargs: dict[str, Any], parent_pid: int) -> None:
    _die_with_parent(parent_pid)
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
        self._process = _SPAWN.Process(
            target=_child, args=(send, problem, kwargs, os.getpid()), daemon=True
        )
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
                raise SolveDeadlineExceeded(
                    f"no plan within {self._deadline - self._started:.1f} s"
                )
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
                self._outcome = (
                    "error",
                    f"solver process died (exit code {self._process.exitcode})",
                )
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


def solve_in_subprocess(
    problem: Problem,
    *,
    time_limit_s: float,
    deadline_s: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> SolveHandle:
    """Start `plan_routes` in a child process; `deadline_s` (wall, from now) bounds the wait.

    A sensible deadline is the time limit plus the start-up and matrix building, e.g. +10 s.
    """
    return SolveHandle(
        problem, deadline_s=deadline_s, time_limit_s=time_limit_s, seed=seed, **kwargs
    )


# a child hands its plan back (pickling, pipe) in this much time before the deadline
_HANDBACK_S = 0.1


def plan_until(problem: Problem, deadline_epoch: float, **kwargs: Any) -> Plan:
    """`plan_routes` with whatever is left until `deadline_epoch` (time.time(), shared by every
    process), so spawning and importing in a child come out of the caller's budget."""
    left = max(0.05, deadline_epoch - time.time() - _HANDBACK_S)
    return plan_routes(problem, time_limit_s=left, **kwargs)


# two cores on a problem that fits PyVRP: the second core's OR-Tools share, before PyVRP starts
# from OR-Tools' plan with another seed (a second, different PyVRP trajectory)
ORTOOLS_FIRST_SHARE = 1 / 3


def ortools_then_pyvrp(
    problem: Problem, deadline_epoch: float, *, seed: int, **kwargs: Any
) -> Plan:
    """OR-Tools for `ORTOOLS_FIRST_SHARE` of what is left, then the default engine started from
    its routes until the deadline; the better re-checked plan of the two."""
    kwargs.pop("engine", None)
    left = deadline_epoch - time.time() - _HANDBACK_S
    first = plan_routes(
        problem,
        time_limit_s=max(0.05, left * ORTOOLS_FIRST_SHARE),
        seed=seed,
        engine="ortools",
        **kwargs,
    )
    rest = deadline_epoch - time.time() - _HANDBACK_S
    if rest < 0.2 or not first.routes:
        return first
    kwargs.pop("search", None)
    second = plan_routes(
        problem,
        time_limit_s=rest,
        seed=seed,
        engine="auto",
        initial_routes={r.vehicle_id: r.stop_ids for r in first.routes},
        **kwargs,
    )
    return second if second.rechecked and better(second, first) else first


def plan_routes_on_cores(
    problem: Problem,
    *,
    time_limit_s: float,
    cores: int = 2,
    seed: int = 0,
    portfolio: Sequence[SearchConfig] = PORTFOLIO,
    **kwargs: Any,
) -> Plan:
    """Two or more searches side by side, one process each; the better re-checked plan wins on
    (unassigned drops, cost). Where the problem fits PyVRP, the first core runs the default
    engine (PyVRP) and the second OR-Tools, then PyVRP from OR-Tools' plan with another seed
    (`ortools_then_pyvrp`); where a driver break is all that does not fit, every core runs the
    default's break path (routing/breaks.py) with its own seed; otherwise the OR-Tools
    portfolio. The returned plan's time to first solution is the earliest of the runs.
    """
    deadline_epoch = time.time() + time_limit_s
    configs = [portfolio[(seed + i) % len(portfolio)] for i in range(cores)]
    why_not = misfit(problem, kwargs.get("locked"))
    fits = why_not is None and kwargs.get("solution_limit") is None
    # a break the only misfit: the relaxed path on every core, each with its own PyVRP seed
    # (city-200 at 20 s: 0.98-1.01 M against 1.31 M for OR-Tools alone, docs/routing.md)
    breaks_only = why_not == BREAKS_ONLY and kwargs.get("solution_limit") is None
    if cores <= 1:
        return plan_routes(
            problem, time_limit_s=time_limit_s, seed=seed, search=configs[0], **kwargs
        )
    kwargs.pop("engine", None)
    if fits:
        engines = ["auto", "ortools+pyvrp"] + ["ortools"] * (cores - 2)
    else:
        engines = ["auto" if breaks_only else "ortools"] * cores
    with _pool(cores) as pool:
        futures = []
        for i, (c, e) in enumerate(zip(configs, engines, strict=True)):
            if e == "ortools+pyvrp":
                futures.append(
                    pool.submit(
                        ortools_then_pyvrp,
                        problem,
                        deadline_epoch,
                        seed=seed + i,
                        search=c,
                        **kwargs,
                    )
                )
            else:
                futures.append(
                    pool.submit(
                        plan_until,
                        problem,
                        deadline_epoch,
                        seed=seed + i,
                        search=c,
                        engine=e,
                        **kwargs,
                    )
                )
        plans = [f.result() for f in futures]
    best = pick(plans)
    firsts = [p.time_to_first_solution_s for p in plans if p.time_to_first_solution_s is not None]
    discarded = tuple(d for p in plans for d in p.discarded)
    return replace(
        best, time_to_first_solution_s=min(firsts) if firsts else None, discarded=discarded
    )


def pick(plans: Sequence[Plan]) -> Plan:
    """The better of several runs' plans on (unassigned drops, cost), among those that passed
    the re-check; only when none did, the first (its status says so)."""
    kept = [p for p in plans if p.rechecked]
    best = (kept or list(plans))[0]
    for plan in kept[1:]:
        if better(plan, best):
            best = plan
    return best


def solve_many(
    problems: Mapping[str, Problem], *, time_limit_s: float, workers: int = 2, seed: int = 0
) -> dict[str, Plan]:
    """Independent problems (e.g. the last mile of each station) in a pool of worker processes;
    `time_limit_s` bounds the whole call: the problems run in rounds of `workers`
    (`PoolRunner`), each round with its share of the time."""
    if not problems:
        return {}
    rounds = -(-len(problems) // max(1, min(workers, len(problems))))
    return dict(PoolRunner(workers).solve(problems, time_limit_s=time_limit_s / rounds, seed=seed))


@dataclass(frozen=True, slots=True)
class PoolRunner:
    """A pool of `workers` spawned processes (one worker, or one problem: in this process).

    Problems run in rounds of `workers`, in the order given: problem i must end by the call's
    start + (i // workers + 1) × `time_limit_s`, so starting the processes comes out of the
    first round and the whole call ends within rounds × `time_limit_s`."""

    workers: int = 2

    def solve(
        self, problems: Mapping[str, Problem], *, time_limit_s: float, seed: int, tag: str = ""
    ) -> Iterator[tuple[str, Plan]]:
        start = time.time()
        per_round = max(1, self.workers) if len(problems) > 1 else 1
        jobs = {
            key: (_plan_in_slot, (problem, start + (i // per_round + 1) * time_limit_s, seed))
            for i, (key, problem) in enumerate(problems.items())
        }
        yield from _in_pool(self.workers, jobs)


@dataclass
class LocalRunner:
    """A pool of `workers` spawned processes (one worker, or one problem: in this process) in
    which each problem gets the whole `time_limit_s` from when a process starts it: the night's
    per-problem limits, where `PoolRunner` holds problems to slots of one call's budget."""

    workers: int = 2

    def solve(
        self, problems: Mapping[str, Problem], *, time_limit_s: float, seed: int, tag: str = ""
    ) -> Iterator[tuple[str, Plan]]:
        jobs = {
            key: (_plan_for, (problem, time_limit_s, seed)) for key, problem in problems.items()
        }
        yield from _in_pool(self.workers, jobs)


def _in_pool(workers: int, jobs: Mapping[str, tuple[Any, tuple]]) -> Iterator[tuple[str, Plan]]:
    """Each job (key -> function, arguments) in a pool of `workers` spawned processes, yielded as
    it finishes; one worker or one job runs here, in the order given. The processes die with
    this one. When the caller stops early (an error while storing a plan, a lost claim: the
    generator is closed) or a job fails, the jobs not started are cancelled at once, so the
    error shows after the solves already running, not after every queued one."""
    if workers <= 1 or len(jobs) <= 1:
        for key, (fn, args) in jobs.items():
            yield key, fn(*args)
        return
    pool = _pool(min(workers, len(jobs)))
    try:
        futures = {pool.submit(fn, *args): key for key, (fn, args) in jobs.items()}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _plan_for(problem: Problem, time_limit_s: float, seed: int) -> Plan:
    return plan_routes(problem, time_limit_s=time_limit_s, seed=seed)


def _plan_in_slot(problem: Problem, slot_end_epoch: float, seed: int) -> Plan:
    """A problem gets from when it starts until its slot ends (at least a little)."""
    return plan_until(problem, max(slot_end_epoch, time.time() + 0.2), seed=seed)
