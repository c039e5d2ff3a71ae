"""bayesid.executor: checkpointed, resumable job runs (serial, local pool, dask)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from bayesid.executor import CheckpointError, CheckpointStore, run_jobs


def _job(i, seed):
    """A deterministic random job: the result depends only on (i, seed)."""
    rng = np.random.default_rng([seed, i])
    return {"i": i, "x": rng.standard_normal(3).tolist()}


def _jobs(n=6, seed=0):
    return [(f"job{i}", (i, seed)) for i in range(n)]


def test_checkpoint_resumes_and_refuses_other_or_corrupt_stores(tmp_path):
    store = CheckpointStore(tmp_path / "ck", {"model": "abc", "seed": 0})
    first = run_jobs(_job, _jobs(), checkpoint=store, progressbar=False)
    calls = []

    def counting(i, seed):
        calls.append(i)
        return _job(i, seed)

    again = run_jobs(counting, _jobs(8), checkpoint=CheckpointStore(tmp_path / "ck", {"model": "abc", "seed": 0}),
                     progressbar=False)
    assert calls == [6, 7]  # nothing repeated
    assert {k: again[k] for k in first} == first
    with pytest.raises(CheckpointError, match="another comparison"):
        CheckpointStore(tmp_path / "ck", {"model": "abc", "seed": 1})
    f = next(p for p in (tmp_path / "ck").iterdir() if p.name != "header.json")
    f.write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        run_jobs(_job, _jobs(8), checkpoint=CheckpointStore(tmp_path / "ck", {"model": "abc", "seed": 0}),
                 progressbar=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a bayesid checkpoint"):
        CheckpointStore(tmp_path / "other", {"a": 1})


@pytest.mark.slow
def test_local_pool_gives_the_serial_result():
    from bayesid.executor import local_pool

    serial = run_jobs(_job, _jobs(4), progressbar=False)
    assert run_jobs(_job, _jobs(4), executor=2, progressbar=False) == serial
    with local_pool(2) as pool:  # a caller's pool is reused across runs and left running
        assert run_jobs(_job, _jobs(4), executor=pool, progressbar=False) == serial
        assert run_jobs(_job, _jobs(4), executor=pool, progressbar=False) == serial
        # the PyMC pitfall: each live worker has its own pytensor compile directory and one BLAS thread
        env = [pool.submit_to(i, _worker_env).result() for i in (0, 1)]
        assert env[0][0] != env[1][0] and all("base_compiledir=" in e[0] for e in env), env
        assert all(e[1] == "1" for e in env), env


def _worker_env():
    import os

    return os.environ.get("PYTENSOR_FLAGS", ""), os.environ.get("OMP_NUM_THREADS")


def test_compile_dirs_private_while_alive_and_reused_after(tmp_path):
    """Two live owners never share a compile directory; a directory is reused once its owner is gone
    (its lock released), so a later worker finds its compiled-code caches warm."""
    from bayesid import executor

    saved = executor._SLOT_LOCK
    try:
        first = executor._own_compile_dir(tmp_path)
        lock1 = executor._SLOT_LOCK
        second = executor._own_compile_dir(tmp_path)
        assert first != second and first.parent == second.parent == tmp_path
        lock1.close()  # the first owner ends
        executor._SLOT_LOCK.close()
        assert executor._own_compile_dir(tmp_path) == first
        executor._SLOT_LOCK.close()
    finally:
        executor._SLOT_LOCK = saved


def test_shared_argument_is_unpickled_once_per_process():
    """A Shared argument pickles to the same bytes for every job and comes back, in a process that has
    seen its token, as the object kept there (what a job built on it survives); the serial path passes
    the object itself."""
    import cloudpickle

    from bayesid.executor import Shared

    obj = {"built": 0}
    sh = Shared(obj)
    a = cloudpickle.loads(cloudpickle.dumps(("x", sh)))[1]
    a["built"] += 1
    b = cloudpickle.loads(cloudpickle.dumps(("y", sh)))[1]
    assert b is a and b["built"] == 1 and obj["built"] == 0  # a copy, kept per process, not the original
    other = cloudpickle.loads(cloudpickle.dumps(Shared({"built": 0})))
    assert other is not a  # another token: another object
    seen = []
    run_jobs(lambda o, i: seen.append(o) or {"i": i}, [("a", (sh, 1)), ("b", (sh, 2))], progressbar=False)
    assert seen[0] is obj and seen[1] is obj


def test_schedule_keeps_each_group_on_few_workers():
    """3 groups × 20 jobs on 2 workers (the datasets of 3 designs): every job runs once, each worker
    runs at most 2 groups (a model compiled at most twice per worker, where first come first served lets
    both workers meet all 3), and the work is split evenly (30 ± 2 jobs each, in-flight prefetch 2)."""
    from concurrent.futures import Future

    from bayesid.executor import _schedule

    todo = [(f"d{g}|{i}", (g, i)) for g in range(3) for i in range(20)]
    groups = {k: k.split("|")[0] for k, _ in todo}
    lane_of, order = {}, []

    def submit(i, key, args):
        f = Future()
        f.set_result(args)
        lane_of[key] = i
        order.append(f)
        return f

    done = []
    _schedule(2, submit, lambda futs: [min(futs, key=order.index)], todo, groups,
              lambda key, f: done.append(key))
    assert sorted(done) == sorted(k for k, _ in todo)
    per_lane = [{groups[k] for k, i in lane_of.items() if i == lane} for lane in (0, 1)]
    assert all(len(g) <= 2 for g in per_lane), per_lane
    n = [sum(i == lane for i in lane_of.values()) for lane in (0, 1)]
    assert abs(n[0] - n[1]) <= 4, n


_SCRIPT = """
import sys, time
import numpy as np
from bayesid.executor import CheckpointStore, run_jobs

def job(i, seed):
    time.sleep(0.4)
    return {{"i": i, "x": np.random.default_rng([seed, i]).standard_normal(2).tolist()}}

store = CheckpointStore({path!r}, {{"model": "m", "seed": 3}})
res = run_jobs(job, [(f"j{{i}}", (i, 3)) for i in range(12)], checkpoint=store, progressbar=False)
print("RESULT", __import__("json").dumps(res, sort_keys=True))
"""


@pytest.mark.slow
@pytest.mark.slice
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Kill a run mid-way (SIGKILL, no clean-up), resume it, and compare with an uninterrupted run."""
    ck = tmp_path / "ck"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(path=str(ck))))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 120:
        done = [f for f in ck.glob("*.json") if f.name != "header.json"] if ck.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    n_before = len([f for f in ck.glob("*.json") if f.name != "header.json"])
    assert 3 <= n_before < 12, n_before
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300).stdout
    resumed = json.loads(out.split("RESULT", 1)[1])
    ref_script = tmp_path / "ref.py"
    ref_script.write_text(textwrap.dedent(_SCRIPT.format(path=str(tmp_path / "ref"))))
    ref = json.loads(subprocess.run([sys.executable, str(ref_script)], capture_output=True, text=True,
                                    timeout=300).stdout.split("RESULT", 1)[1])
    assert resumed == ref


@pytest.mark.slow
def test_dask_local_cluster_gives_the_serial_result():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert run_jobs(_job, _jobs(4), executor=client, progressbar=False) == run_jobs(_job, _jobs(4),
                                                                                         progressbar=False)


def _imported_modules(path):
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("bayesid." if node.level else "") + (node.module or "")
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def test_executor_does_not_import_designs():
    """One-way dependency: bayesid.designs uses the executor; the executor (generic job running) imports
    nothing of the design comparison, at any level. Control: the same walk finds designs' import of
    the executor."""
    from pathlib import Path

    import bayesid

    root = Path(bayesid.__file__).parent
    assert not any("designs" in n for n in _imported_modules(root / "executor.py"))
    assert "bayesid.executor" in _imported_modules(root / "designs.py")
