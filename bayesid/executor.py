"""Run many independent jobs (one simulated dataset each) serially, on a local process pool or on a
``dask.distributed`` cluster, with every finished job checkpointed so an interrupted run resumes with
nothing lost or repeated.

PyMC pitfalls handled for every worker process: its own pytensor compile directory
(``PYTENSOR_FLAGS=base_compiledir=...``, so workers never fight over one cache lock) and one BLAS/OpenMP
thread (parallelism comes from the workers). Jobs and results travel with ``cloudpickle``.

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

from bayesid.errors import BayesidError

__all__ = ["CheckpointError", "CheckpointStore", "run_jobs", "worker_setup", "local_pool"]


class CheckpointError(BayesidError):
    """A checkpoint store that belongs to another comparison, or a corrupt checkpoint file."""


def worker_setup(base_dir: str | None = None) -> None:
    """Per-process PyMC set-up: private pytensor compile dir, one thread. Call before importing pytensor."""
    base = Path(base_dir or tempfile.gettempdir()) / f"bayesid-pytensor-{os.getpid()}"
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "base_compiledir" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={base}") if f)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


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


def _run_pickled(payload: bytes) -> bytes:
    import cloudpickle

    func, args = cloudpickle.loads(payload)
    return cloudpickle.dumps(func(*args))


def _init_worker():
    worker_setup()


def _warm():
    import pymc  # noqa: F401 - the imports a job needs, paid once per worker

    return os.getpid()


def local_pool(n_workers: int, warm: bool = False):
    """A local pool of ``n_workers`` spawned processes, each set up by :func:`worker_setup`; pass it as
    ``executor=`` to reuse it across runs (``run_jobs(..., executor=n)`` makes and closes one per run).

    Parameters
    ----------
    n_workers : int
    warm : bool
        Import PyMC in every worker now, so that the first jobs do not pay for it.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise BayesidError(f"n_workers must be a positive integer, got {n_workers!r}")
    pool = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    if warm:
        # one import job per worker: each sleeps briefly so that every worker takes one
        list(pool.map(_warm_sleep, [0.5] * n_workers))
    return pool


def _warm_sleep(seconds):
    import time

    _warm()
    time.sleep(seconds)
    return os.getpid()


def run_jobs(func, jobs, executor=None, checkpoint: CheckpointStore | None = None, progressbar: bool = True,
             description: str = "datasets") -> dict:
    """Run ``func(*args)`` for every ``(job_key, args)`` in ``jobs``; results keyed by ``job_key``.

    Parameters
    ----------
    func : callable
        Returns a JSON-serialisable result (checkpointed).
    jobs : list of (str, tuple)
    executor : None, int, "serial", concurrent.futures.Executor or dask.distributed.Client
        ``None``/``"serial"``/``1``: this process. An int ``n > 1``: a local pool of ``n`` processes
        (spawned, each with :func:`worker_setup`), closed at the end. An ``Executor`` (e.g. from
        :func:`local_pool`): its workers, left running. A dask ``Client``: its workers (start them with
        ``nthreads=1``; each job sets up its own compile dir).
    checkpoint : CheckpointStore, optional
        Finished jobs are loaded from it and skipped; every new result is written as soon as it arrives.
    progressbar : bool
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
                _done(key, func(*args))
        elif isinstance(executor, int) and not isinstance(executor, bool) or isinstance(executor, _Executor):
            import cloudpickle
            from concurrent.futures import as_completed

            ex = local_pool(executor) if isinstance(executor, int) else executor
            try:
                futs = {ex.submit(_run_pickled, cloudpickle.dumps((func, args))): key for key, args in todo}
                for f in as_completed(futs):
                    _done(futs[f], cloudpickle.loads(f.result()))
            finally:
                if ex is not executor:
                    ex.shutdown()
        elif hasattr(executor, "submit") and hasattr(executor, "gather"):  # dask.distributed.Client
            import cloudpickle
            from dask.distributed import as_completed as das_completed

            executor.run(_init_worker)
            futs = {executor.submit(_run_pickled, cloudpickle.dumps((func, args)), pure=False): key
                    for key, args in todo}
            for f in das_completed(list(futs)):
                _done(futs[f], cloudpickle.loads(f.result()))
        else:
            raise BayesidError(f"executor={executor!r}: use None (serial), a number of local worker processes, "
                               "or a dask.distributed.Client")
    finally:
        if bar:
            bar.stop()
    return results
