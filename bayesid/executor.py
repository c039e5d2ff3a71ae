"""Run many independent jobs (one simulated dataset each) serially, on a local process pool or on a
``dask.distributed`` cluster, with every finished job checkpointed so an interrupted run resumes with
nothing lost or repeated.

PyMC pitfalls handled for every worker process: its own pytensor compile directory
(``PYTENSOR_FLAGS=base_compiledir=...``, so workers never fight over one cache lock) and one BLAS/OpenMP
thread (parallelism comes from the workers). Jobs and results travel with ``cloudpickle``; an argument
that many jobs share (a comparison's models) is wrapped in :class:`Shared`, pickled once per run and
unpickled once per worker process, so each job carries only its own small arguments.

This module knows nothing of what the jobs do: callers name the modules a worker should import when it
starts (``preload``), e.g. :mod:`bayesid.designs` passes its own.

Checkpoint store
----------------
A directory: ``header.json`` holds the comparison's key (model fingerprint, designs, priors, seed,
settings); each finished job is one ``<job key>.json`` written atomically (temporary file + rename).
A store written for another key, or a file that cannot be read, raises :class:`CheckpointError`;
nothing is overwritten or reused silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from concurrent.futures import Executor as _Executor

import numpy as np

from bayesid.errors import BayesidError

__all__ = ["CheckpointError", "CheckpointStore", "LocalPool", "Shared", "run_jobs", "worker_setup", "local_pool"]

#: Modules every worker imports when it starts (before its first job), unless told otherwise.
DEFAULT_PRELOAD = ("pymc", "nutpie")


class CheckpointError(BayesidError):
    """A checkpoint store that belongs to another comparison, or a corrupt checkpoint file."""


_SLOT_LOCK = None  # the open, locked file that makes this process the owner of its compile directory


def _own_compile_dir(root: Path) -> Path:
    """A compile directory under ``root`` that no other live process uses: the first of
    ``bayesid-pytensor-worker<k>`` whose lock this process gets (an exclusive ``flock``, held until the
    process ends, even if it is killed). A later worker reuses a finished one's directory, and with it
    PyTensor's caches of compiled C modules and numba functions (a fresh directory per process made
    every worker recompile them all: a fresh worker's first sampler compile took 19.5 s against 11 s in
    a process with warm caches, under load). Where ``flock`` is unavailable: one directory per process
    id, as before."""
    global _SLOT_LOCK
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return root / f"bayesid-pytensor-{os.getpid()}"
    for k in range(1024):
        d = root / f"bayesid-pytensor-worker{k}"
        d.mkdir(parents=True, exist_ok=True)
        f = open(d / ".owner.lock", "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _SLOT_LOCK = f
        return d
    return root / f"bayesid-pytensor-{os.getpid()}"  # pragma: no cover - 1024 live workers


def worker_setup(base_dir: str | None = None) -> None:
    """Per-process PyMC set-up: a private pytensor compile directory, one thread. Call before importing
    pytensor.

    The compile directory is private while the process lives (never shared by two live processes: the
    PyMC pitfall of workers fighting over one compile lock) and reused by later workers
    (:func:`_own_compile_dir`), so their compiled-code caches stay warm. An explicit
    ``base_compiledir`` in ``PYTENSOR_FLAGS`` is left as it is."""
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "base_compiledir" not in flags:
        base = _own_compile_dir(Path(base_dir or tempfile.gettempdir()))
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={base}") if f)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:  # BLAS already loaded (a dask worker has numpy): the environment no longer reaches it
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - without threadpoolctl the environment variables still apply
        pass


class CheckpointStore:
    """One store per comparison; see the module docstring.

    Parameters
    ----------
    path : path
        Directory (created if missing).
    key : dict
        JSON-serialisable identity of the comparison; must equal the stored header when the store exists.
    """

    def __init__(self, path, key: dict):
        self.path = Path(path)
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        head = self.path / "header.json"
        if head.exists():
            try:
                stored = json.loads(head.read_text())
            except (OSError, ValueError) as err:
                raise CheckpointError(f"checkpoint header {head} is unreadable ({err}); delete {self.path} "
                                      "to start afresh") from err
            if stored.get("digest") != self.digest:
                diff = sorted(k for k in set(stored.get("key", {})) | set(self.key)
                              if stored.get("key", {}).get(k) != self.key.get(k))
                raise CheckpointError(
                    f"checkpoint {self.path} belongs to another comparison (differs in {diff}); use another "
                    "checkpoint path or delete it — it is never overwritten")
        else:
            if self.path.exists() and any(self.path.iterdir()):
                raise CheckpointError(f"{self.path} exists, is not empty and has no header.json: not a bayesid "
                                      "checkpoint store; choose an empty or new directory")
            self.path.mkdir(parents=True, exist_ok=True)
            self._atomic(head, {"digest": self.digest, "key": self.key})

    @staticmethod
    def _atomic(path: Path, obj) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _file(self, job_key: str) -> Path:
        return self.path / (hashlib.sha256(job_key.encode()).hexdigest()[:24] + ".json")

    def load(self, job_key: str):
        """The stored result of ``job_key`` or None; a corrupt file raises :class:`CheckpointError`."""
        p = self._file(job_key)
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError) as err:
            raise CheckpointError(f"checkpoint file {p} is corrupt ({err}); delete it to recompute that "
                                  "dataset") from err
        if rec.get("job") != job_key or rec.get("digest") != self.digest:
            raise CheckpointError(f"checkpoint file {p} records job {rec.get('job')!r} of another store; "
                                  "delete it to recompute that dataset")
        return rec["result"]

    def save(self, job_key: str, result) -> None:
        self._atomic(self._file(job_key), {"job": job_key, "digest": self.digest, "result": result})


class Shared:
    """An argument shared by many jobs (e.g. the models of one comparison): pickled once per run,
    unpickled once per worker process.

    Pickling a ``Shared`` gives its object's ``cloudpickle`` bytes (computed at the first job, reused for
    the others) and a token; a process that unpickles a token it has seen returns the object it kept,
    so a job neither deserialises the shared object again nor loses what it built there (compiled
    functions cached on it). Unpickled, it *is* the object; :func:`run_jobs` passes the object itself
    to jobs it runs in this process. At most :data:`_KEEP` shared objects are kept per process.

    Parameters
    ----------
    obj : object
        What the jobs share; it must not change after the first job is sent.
    token : str, optional
        Identity of ``obj`` across processes (default: a new random one).
    """

    def __init__(self, obj, token: str | None = None):
        import uuid

        self.obj = obj
        self.token = token or uuid.uuid4().hex
        self._blob = None

    def __reduce__(self):
        if self._blob is None:
            import cloudpickle

            self._blob = cloudpickle.dumps(self.obj)
        return _load_shared, (self.token, self._blob)


_KEEP = 4
_SHARED: dict = {}


def _load_shared(token: str, blob: bytes):
    """The object of a :class:`Shared` in this process (unpickled at its first job here)."""
    got = _SHARED.pop(token, None)
    if got is None:
        import cloudpickle

        got = cloudpickle.loads(blob)
    _SHARED[token] = got  # most recently used last
    while len(_SHARED) > _KEEP:
        _SHARED.pop(next(iter(_SHARED)))
    return got


def _unshared(args: tuple) -> tuple:
    return tuple(a.obj if isinstance(a, Shared) else a for a in args)


def _run_pickled(payload: bytes) -> bytes:
    import cloudpickle

    func, args = cloudpickle.loads(payload)
    return cloudpickle.dumps(func(*args))


def _init_worker(preload=()):
    """Set up a worker process (:func:`worker_setup`) and import ``preload`` (module names)."""
    import importlib

    worker_setup()
    for name in preload:
        importlib.import_module(name)


class LocalPool(_Executor):
    """``n_workers`` spawned processes, each its own single-process executor (a *lane*), so that
    :func:`run_jobs` can send a job to the worker that already compiled its model (``groups``).

    Every worker is set up by :func:`worker_setup` (private pytensor compile directory, one thread) and
    imports the ``preload`` modules when it starts (not in its first job). Used as a plain
    ``concurrent.futures.Executor`` it submits to the least-loaded lane.
    """

    def __init__(self, n_workers: int, warm: bool = False, preload=DEFAULT_PRELOAD):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        self.preload = tuple(preload)
        self.lanes = [ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker, initargs=(self.preload,))
                      for _ in range(n_workers)]
        self._load = [0] * n_workers
        if warm:  # start every worker now (imports included), each on its own lane
            for f in [lane.submit(os.getpid) for lane in self.lanes]:
                f.result()

    def submit_to(self, i: int, fn, /, *args, **kwargs):
        self._load[i] += 1
        fut = self.lanes[i].submit(fn, *args, **kwargs)

        def _dec(_f, i=i):
            self._load[i] -= 1

        fut.add_done_callback(_dec)
        return fut

    def submit(self, fn, /, *args, **kwargs):
        return self.submit_to(int(np.argmin(self._load)), fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False):
        for lane in self.lanes:
            lane.shutdown(wait=wait, cancel_futures=cancel_futures)


def local_pool(n_workers: int, warm: bool = False, preload=DEFAULT_PRELOAD) -> LocalPool:
    """A local pool of ``n_workers`` spawned processes (:class:`LocalPool`); pass it as ``executor=`` to
    reuse it across runs (``run_jobs(..., executor=n)`` makes and closes one per run).

    Parameters
    ----------
    n_workers : int
    warm : bool
        Start every worker now (each imports ``preload`` as it starts), so that neither the start-up nor
        the imports fall in the first jobs.
    preload : sequence of str
        Modules each worker imports when it starts (default :data:`DEFAULT_PRELOAD`; the design
        comparison passes ``bayesid.designs.WORKER_MODULES``).
    """
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise BayesidError(f"n_workers must be a positive integer, got {n_workers!r}")
    return LocalPool(n_workers, warm=warm, preload=preload)


def _schedule(n_lanes, submit, wait_first, todo, groups, on_done, per_lane=2) -> None:
    """Run ``todo`` on ``n_lanes`` workers, at most ``per_lane`` jobs in flight on each, keeping jobs of
    one group on the worker that ran that group before (it has compiled that group's model).

    ``per_lane`` may be a list (one limit per worker). A worker that becomes free takes, in this order:
    the next job of its current group; a job of a group it ran before; a job of a group no worker is
    running (the largest); else it shares the group with the most remaining jobs per worker running it.
    Jobs of one group start in their order."""
    from collections import Counter, deque

    pending: dict = {}
    for key, args in todo:
        pending.setdefault(groups.get(key, key) if groups else key, deque()).append((key, args))
    current = [None] * n_lanes
    seen = [set() for _ in range(n_lanes)]
    owners = Counter()
    load = [0] * n_lanes
    limit = list(per_lane) if isinstance(per_lane, (list, tuple)) else [per_lane] * n_lanes
    inflight = {}

    def pick(i):
        live = [g for g in pending if pending[g]]
        if not live:
            return None
        if current[i] in pending and pending[current[i]]:
            return current[i]
        mine = [g for g in live if g in seen[i]]
        if mine:
            return mine[0]
        free = [g for g in live if owners[g] == 0]
        if free:
            return max(free, key=lambda g: len(pending[g]))
        return max(live, key=lambda g: len(pending[g]) / (owners[g] + 1))

    def fill(i):
        while load[i] < limit[i]:
            g = pick(i)
            if g is None:
                return
            key, args = pending[g].popleft()
            if g != current[i]:
                if current[i] is not None:
                    owners[current[i]] -= 1
                owners[g] += 1
                current[i] = g
            seen[i].add(g)
            inflight[submit(i, key, args)] = (key, i)
            load[i] += 1

    for i in range(n_lanes):
        fill(i)
    while inflight:
        for f in wait_first(list(inflight)):
            key, i = inflight.pop(f)
            load[i] -= 1
            on_done(key, f)
            fill(i)


def run_jobs(func, jobs, executor=None, checkpoint: CheckpointStore | None = None, progressbar: bool = True,
             description: str = "datasets", groups: dict | None = None, preload=DEFAULT_PRELOAD) -> dict:
    """Run ``func(*args)`` for every ``(job_key, args)`` in ``jobs``; results keyed by ``job_key``.

    Parameters
    ----------
    func : callable
        Returns a JSON-serialisable result (checkpointed).
    jobs : list of (str, tuple)
        Arguments that many jobs share may be wrapped in :class:`Shared` (one wrapper for all of them):
        pickled once per run, unpickled once per worker; ``func`` receives the object itself.
    executor : None, int, "serial", concurrent.futures.Executor or dask.distributed.Client
        ``None``/``"serial"``/``1``: this process. An int ``n > 1``: this process and ``n − 1`` spawned
        worker processes (each with :func:`worker_setup`), closed at the end; this process starts on
        the jobs at once, so the workers' start-up (spawn, imports) overlaps work instead of preceding
        it. A :class:`LocalPool` (from :func:`local_pool`): its workers, left running. Any other
        ``concurrent.futures.Executor``: first come, first served. A dask ``Client``: its workers
        (start them with ``nthreads=1``; each gets its own compile dir before the first job).
    checkpoint : CheckpointStore, optional
        Finished jobs are loaded from it and skipped; every new result is written as soon as it arrives.
    progressbar : bool
    groups : dict, optional
        ``{job key: group}``: jobs of one group (e.g. the datasets of one design, which share a compiled
        sampler) are kept on the worker that ran that group before (local pool and dask; see
        :func:`_schedule`). Results do not depend on it.
    preload : sequence of str
        Modules each new worker imports before its first job (local workers spawned for ``executor=n``;
        a dask ``Client``'s workers); default :data:`DEFAULT_PRELOAD`.
    """
    results, todo = {}, []
    for key, args in jobs:
        done = checkpoint.load(key) if checkpoint is not None else None
        if done is not None:
            results[key] = done
        else:
            todo.append((key, args))
    bar = None
    if progressbar and todo:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(description, total=len(jobs), completed=len(results))

    def _done(key, res):
        if checkpoint is not None:
            checkpoint.save(key, res)
        results[key] = res
        if bar:
            bar.update(task, advance=1)

    try:
        if executor in (None, "serial", 1):
            for key, args in todo:
                _done(key, func(*_unshared(args)))
        elif isinstance(executor, int) and not isinstance(executor, bool) or isinstance(executor, LocalPool):
            import cloudpickle
            from concurrent.futures import FIRST_COMPLETED, Future, wait

            # executor=n: this process is one of the n (it starts at once, imports and all done) and
            # n - 1 spawned workers join as they come up; a LocalPool of the caller's: its workers only
            ex = local_pool(executor - 1, preload=preload) if isinstance(executor, int) else executor
            here = isinstance(executor, int)

            def submit(i, key, args):
                payload = cloudpickle.dumps((func, args))
                if i < len(ex.lanes):
                    return ex.submit_to(i, _run_pickled, payload)
                f = Future()  # this process: run now (the same pickled round trip as a worker's)
                try:
                    f.set_result(_run_pickled(payload))
                except Exception as err:  # noqa: BLE001 - raised by f.result() below, as a worker's would be
                    f.set_exception(err)
                return f

            try:
                _schedule(len(ex.lanes) + here, submit, lambda futs: wait(futs, return_when=FIRST_COMPLETED).done,
                          todo, groups, lambda key, f: _done(key, cloudpickle.loads(f.result())),
                          per_lane=[2] * len(ex.lanes) + [1] * here)
            except BaseException:
                if ex is not executor:
                    ex.shutdown(wait=False, cancel_futures=True)
                raise
            if ex is not executor:
                ex.shutdown()
        elif isinstance(executor, _Executor):  # any other concurrent.futures executor: first come, first served
            import cloudpickle
            from concurrent.futures import as_completed

            futs = {executor.submit(_run_pickled, cloudpickle.dumps((func, args))): key for key, args in todo}
            for f in as_completed(futs):
                _done(futs[f], cloudpickle.loads(f.result()))
        elif hasattr(executor, "submit") and hasattr(executor, "gather"):  # dask.distributed.Client
            import cloudpickle
            from dask.distributed import wait as dask_wait

            executor.run(_init_worker, tuple(preload))
            workers = sorted(executor.scheduler_info()["workers"])
            if not workers:
                raise BayesidError("the dask Client has no workers; start the cluster's workers first")
            _schedule(len(workers),
                      lambda i, key, args: executor.submit(_run_pickled, cloudpickle.dumps((func, args)), pure=False,
                                                           workers=[workers[i]], allow_other_workers=True),
                      lambda futs: dask_wait(futs, return_when="FIRST_COMPLETED").done, todo, groups,
                      lambda key, f: _done(key, cloudpickle.loads(f.result())))
        else:
            raise BayesidError(f"executor={executor!r}: use None (serial), a number of local worker processes, "
                               "or a dask.distributed.Client")
    finally:
        if bar:
            bar.stop()
    return results
