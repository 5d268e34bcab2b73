"""Executors: where the work units of a run are coded (in-process, local processes, Dask).

A *work unit* (:class:`~medbench.benchmark.rows.WorkUnit`) is one image with the
(codec, setting) cells still to do for it. Executors only schedule: whoever executes a
unit runs :func:`medbench.benchmark.cells.code_units` (which loads the image itself from
the shared data root: pixels never travel through a queue or a scheduler) and the rows
stream back to the one process that writes the results store, so every executor gives
the same rows; only the timing columns differ. Units travel in *tasks* of
:attr:`Job.learned_batch` consecutive units (one unit unless ``run --learned-batch``),
so that learned cells of a task's images are coded in batches.

- ``local`` with 1 worker codes in the calling process (no pool).
- ``local`` with N workers uses N ``spawn``-ed processes (torch and ``fork`` do not mix)
  and caps each one's torch/OpenMP/BLAS threads at ``cores // N`` so they don't
  oversubscribe the CPU.
- ``dask`` sends units to a ``distributed`` cluster (``--scheduler tcp://HOST:PORT``), or
  to a ``LocalCluster`` on the loopback interface; a unit whose worker is lost or which
  raises is retried, and one that keeps failing becomes error rows.

Workers ignore Ctrl-C (the parent decides what an interrupt ends) and die with their
parent: on an interrupt the parent terminates them at once, without waiting for the units
they are coding, and on Linux each worker asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``), so even ``kill -9`` of the parent leaves no process behind;
elsewhere a watchdog thread notices the parent is gone.

A task of several units that kills its worker process even when it runs alone is split
into its units, and a unit that still does is split into one unit per cell, each run
alone again, so only the cell whose codec kills the process becomes an error row.
In-process, the runner records each cell before it is tried (``before_cell``, every
image of a batch), so a cell that kills the whole process is known on ``--resume``.

Workers build codecs by registry name with the run's :class:`CodecContext` (codec objects
need not be picklable) and datasets by spec, so ``Dataset.load(record)`` must work on a
fresh instance given only the record. Timings measured by parallel workers share the CPU
with each other: compare latencies only between runs with the same executor and workers.

This module imports only the standard library at the top: a spawned worker must set its
thread limits before numpy or torch are first imported.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medbench.benchmark.cells import Job
    from medbench.benchmark.rows import ResultRow, WorkUnit
    from medbench.codecs.base import Codec
    from medbench.datasets.base import Dataset

log = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
#: Environment variables that cap the thread pools of OpenMP, MKL, OpenBLAS and friends.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
#: Units kept queued per worker: enough to keep workers busy, few enough to stop quickly.
QUEUED_PER_WORKER = 2
#: How often a unit is tried again after its worker died or it raised.
RETRIES = 2
#: Seconds a terminated worker gets to exit before it is killed.
TERMINATE_GRACE = 2.0
#: Called before a cell is tried in this process for one unit or the units of a batch:
#: ``before_cell(units, codec, setting)``.
BeforeCell = Callable[[Sequence["WorkUnit"], str, str], Any]
#: Units coded together by one call (:func:`medbench.benchmark.cells.code_units`).
Task = tuple["WorkUnit", ...]


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def unit_failed(job: Job, unit: WorkUnit, message: str) -> list[ResultRow]:
    """Error rows for every cell of a unit that no worker could finish."""
    from medbench.benchmark.rows import error_rows

    return error_rows(unit, job.run_id, job.ranks, message, protocol=job.protocol)


def task_failed(job: Job, task: Task, message: str) -> list[ResultRow]:
    """Error rows for every cell of every unit of a task no worker could finish."""
    return [row for unit in task for row in unit_failed(job, unit, message)]


def tasks(units: Iterable[WorkUnit], size: int) -> Iterator[Task]:
    """``units`` in tasks of ``size`` consecutive units (the last may hold fewer)."""
    task: list[WorkUnit] = []
    for unit in units:
        task.append(unit)
        if len(task) >= size:
            yield tuple(task)
            task = []
    if task:
        yield tuple(task)


def limit_threads(threads: int) -> None:
    """Cap this process's math-library threads (call before numpy/torch are imported)."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already started
        pass


def quiet_library_messages() -> None:
    """Send pydicom's warnings and Dask's ``distributed`` chatter to logging, not the console.

    pydicom warns about every odd header it reads (the reader already turns a bad file into
    a skip or an error row with its reason): those warnings go to the ``pydicom`` logger at
    debug. ``distributed`` logs lost workers and retries with tracebacks: only its errors
    show, unless debug logging was asked for.
    """
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if f"{os.sep}pydicom{os.sep}" in str(filename):
            logging.getLogger("pydicom").debug("%s: %s", category.__name__, message)
        else:
            shown(message, category, filename, lineno, file, line)

    if getattr(shown, "__name__", "") != "show":  # once per process
        warnings.showwarning = show
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        logging.getLogger("pydicom").setLevel(logging.ERROR)  # it logs each warning too


def _die_with_parent(parent: int) -> None:
    """Make this worker end when its parent process ends, even by ``kill -9``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):  # no libc prctl: fall back to the watchdog
            pass

    def watch() -> None:  # portable fallback: poll for the parent
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="medbench-parent-watchdog", daemon=True).start()


def start_worker(threads: int, parent: int) -> None:
    """Initializer of a local worker process: ignore Ctrl-C, die with the parent, keep
    library messages off the console, cap math-library threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    quiet_library_messages()
    limit_threads(threads)


# -- executors ----------------------------------------------------------------------------
class Executor(ABC):
    """Codes work units somewhere and streams their rows back, in completion order."""

    name = ""

    @abstractmethod
    def rows(
        self,
        job: Job,
        units: Iterable[WorkUnit],
        datasets: Mapping[str, Dataset],
        codecs: Mapping[str, Codec],
        before_cell: BeforeCell | None = None,
    ) -> Iterator[ResultRow]:
        """Rows of every unit. ``datasets``/``codecs`` are the caller's own instances
        (used in-process; other processes build their own by name). ``before_cell`` is
        called before each cell (or batch of cells) coded *in this process* (other
        executors ignore it)."""

    def describe(self) -> str:
        return self.name

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to release
        """Release workers and connections."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """``local`` with one worker: codes in the calling process, one task at a time."""

    name = "local"

    def describe(self) -> str:
        return "local, 1 worker (in-process)"

    def rows(self, job, units, datasets, codecs, before_cell=None):
        from medbench.benchmark.cells import code_units

        for task in tasks(units, job.learned_batch):
            yield from code_units(job, task, datasets, codecs, before_cell)


class LocalPoolExecutor(Executor):
    """``local`` with N worker processes (``spawn``) on this machine."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 1:
            from medbench.errors import MedbenchError

            raise MedbenchError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = threads or max(1, cpu_count() // workers)

    def describe(self) -> str:
        return f"local, {self.workers} worker processes, {self.threads} thread(s) each"

    def _pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self.threads, os.getpid()),
        )

    @staticmethod
    def _stop(pool) -> None:
        """End a pool now: terminate its workers (their units are abandoned), then kill
        any that outlive the grace period."""
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + TERMINATE_GRACE
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)
        # A worker ended while sending its rows leaves half a message in the result pipe,
        # and the pool's manager thread waits for the rest forever (interpreter exit joins
        # that thread: the hang after "Interrupted"). With every worker gone, closing this
        # process's own copy of the pipe's write end lets that read end with EOF.
        writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
        if writer is not None:
            writer.close()
        pool.shutdown(wait=False, cancel_futures=True)
        # Let the manager thread finish closing its wake-up pipe now: left running, it can
        # close it while the interpreter's exit hook writes to it (a race of Python 3.11's
        # concurrent.futures that prints "Exception ignored … Bad file descriptor").
        manager = getattr(pool, "_executor_manager_thread", None)
        if manager is not None and manager.is_alive():
            manager.join(TERMINATE_GRACE + 3.0)
        if manager is not None and manager.is_alive():
            # Still closing (a loaded machine): take it off the exit hook's list, so the
            # hook never writes to the pipe it is closing; interpreter exit still joins
            # the thread (it is not a daemon).
            from concurrent.futures import process as futures_process

            getattr(futures_process, "_threads_wakeups", {}).pop(manager, None)

    def rows(self, job, units, datasets, codecs, before_cell=None):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from medbench.benchmark.cells import code_units_by_name as code

        queue = tasks(units, job.learned_batch)
        retry: list[tuple[Task, int]] = []
        # Tasks that were in flight when a worker process died. Any of them may have killed
        # it, so each is run again *alone*: only a task that kills a pool by itself is
        # charged, and innocent neighbours never become error rows. A task of several
        # units that kills it alone is split into its units, and a unit of several cells
        # into one unit per cell, each run alone, so only the killing cell becomes an
        # error row.
        suspects: list[tuple[Task, int]] = []
        pool = self._pool()
        pending: dict[Any, tuple[Task, int, bool]] = {}

        def submit(task: Task, attempt: int, alone: bool) -> bool:
            """Queue ``task``; False when the pool broke since the last completion (a
            worker died while others finished): the task, never run, waits uncharged."""
            try:
                pending[pool.submit(code, job, task)] = (task, attempt, alone)
                return True
            except BrokenProcessPool:
                (suspects if alone else retry).append((task, attempt))
                return False

        def fill() -> bool:
            """Queue work; False when the pool turned out broken."""
            if suspects:
                if not pending:
                    task, attempt = suspects.pop()
                    return submit(task, attempt, True)
                return True
            while len(pending) < self.workers * QUEUED_PER_WORKER:
                if retry:
                    task, attempt = retry.pop()
                else:
                    task = next(queue, None)
                    attempt = 0
                    if task is None:
                        return True
                if not submit(task, attempt, False):
                    return False
            return True

        def refill() -> None:
            nonlocal pool
            # A pool found broken with nothing in flight gets no future to report it:
            # replace it here (with work in flight, the loop below sees the breakage).
            while not fill() and not pending:
                self._stop(pool)
                pool = self._pool()

        completed = False
        try:
            refill()
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    task, attempt, alone = pending.pop(future)
                    try:
                        rows = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone and len(task) > 1:
                            log.warning("a batch of %d images killed its worker: trying "
                                        "them one by one", len(task))
                            suspects.extend(((unit,), attempt) for unit in reversed(task))
                            rows = []
                        elif alone and len(task[0].cells) > 1:
                            unit = task[0]
                            log.warning("%s %s killed its worker: trying its cells one by one",
                                        unit.dataset, unit.record.image_id)
                            suspects.extend(((replace(unit, cells=(cell,)),), RETRIES)
                                            for cell in reversed(unit.cells))
                            rows = []
                        elif alone:
                            rows = self._retry_or_fail(
                                job, task, attempt, suspects, "its worker process died"
                            )
                        else:
                            suspects.append((task, attempt))
                            rows = []
                    except Exception as exc:  # a bug in the harness itself: keep the run going
                        rows = self._retry_or_fail(job, task, attempt, retry, repr(exc))
                    yield from rows
                if broken:  # every queued task of a broken pool is lost: start a new pool
                    suspects.extend((task, attempt) for task, attempt, _ in pending.values())
                    pending.clear()
                    self._stop(pool)
                    pool = self._pool()
                refill()
            completed = True
        finally:
            if completed:
                pool.shutdown(wait=True)
            else:  # interrupted (or the consumer stopped): end the workers now
                self._stop(pool)

    @staticmethod
    def _retry_or_fail(job: Job, task: Task, attempt: int, retry: list,
                       reason: str) -> list[ResultRow]:
        if attempt < RETRIES:
            unit = task[0]
            log.warning("retrying %s %s%s: %s", unit.dataset, unit.record.image_id,
                        f" and {len(task) - 1} more" if len(task) > 1 else "", reason)
            retry.append((task, attempt + 1))
            return []
        return task_failed(job, task, f"no worker could code this image ({reason})")


class DaskExecutor(Executor):
    """``dask``: a ``distributed`` cluster at ``scheduler``, or a loopback ``LocalCluster``."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None,
                 retries: int = RETRIES):
        from medbench.errors import MedbenchError

        quiet_library_messages()
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise MedbenchError(
                "--executor dask needs dask.distributed; pip install 'medbench[dask]'"
            ) from None
        self.retries = retries
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise MedbenchError(
                    f"could not connect to the Dask scheduler at {scheduler} ({exc}); check "
                    "--scheduler tcp://HOST:PORT and that `dask scheduler` is running there"
                ) from None
        else:
            n = workers or cpu_count()
            # Loopback only, no dashboard: nothing is exposed to the network.
            self.cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        self.scheduler = scheduler or self.cluster.scheduler_address

    def describe(self) -> str:
        threads = sum(self.client.nthreads().values())
        return f"dask at {self.scheduler}, {threads} worker thread(s)"

    def rows(self, job, units, datasets, codecs, before_cell=None):
        from distributed import as_completed

        from medbench.benchmark.cells import code_units_by_name as code

        slots = max(1, sum(self.client.nthreads().values())) * QUEUED_PER_WORKER
        queue = tasks(units, job.learned_batch)
        live: dict[str, tuple[Any, Task]] = {}

        def submit():
            task = next(queue, None)
            if task is None:
                return None
            future = self.client.submit(code, job, task, retries=self.retries, pure=False)
            live[future.key] = (future, task)
            return future

        running = as_completed([f for f in (submit() for _ in range(slots)) if f is not None])
        try:
            for future in running:
                _, task = live.pop(future.key)
                try:
                    rows = future.result()
                except Exception as exc:  # retries used up (lost workers or a raising task)
                    rows = task_failed(job, task, f"no worker could code this image ({exc!r})")
                future.release()
                nxt = submit()
                if nxt is not None:
                    running.add(nxt)
                yield from rows
        finally:
            if live:  # interrupted: drop what is still queued on the cluster
                running.clear()
                try:
                    self.client.cancel([future for future, _ in live.values()], force=True)
                except RuntimeError:  # the client is already closed
                    pass

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(kind: str, workers: int | None = None, scheduler: str | None = None) -> Executor:
    """The executor for ``--executor``/``--workers``/``--scheduler``.

    ``workers`` None means the machine's cores; ``local`` with 1 worker runs in-process.
    """
    from medbench.errors import MedbenchError

    if kind not in EXECUTORS:
        raise MedbenchError(f"unknown executor {kind!r}; use one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise MedbenchError(f"--workers must be at least 1, got {workers}")
    if scheduler and kind != "dask":
        raise MedbenchError("--scheduler needs --executor dask")
    if kind == "dask":
        return DaskExecutor(scheduler, workers)
    n = workers or cpu_count()
    return InProcessExecutor() if n == 1 else LocalPoolExecutor(n)
