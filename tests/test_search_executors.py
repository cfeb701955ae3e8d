"""The trial executors: in process, a local process pool, and a real local Ray cluster."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import _executor_tasks as toy
import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.search.executors import (
    EXECUTORS,
    InProcessExecutor,
    ProcessPoolExecutor,
    RayExecutor,
    TrialExecutor,
    make_executor,
)
from zenml_quant.search.executors.pool import onednn_enabled

TESTS_DIR = str(Path(__file__).resolve().parent)


def _context(payload_bytes: int = 0) -> toy.Context:
    return toy.Context(uuid.uuid4().hex, payload=b"x" * payload_bytes)


def _is_error(result: object) -> bool:
    return isinstance(result, tuple) and len(result) == 3 and result[0] == "error"


class Calls:
    """A progress callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, object]] = []

    def __call__(self, index: int, result: object) -> None:
        self.calls.append((index, result))


# --- factory and options ----------------------------------------------------------------------


def test_make_executor_builds_each_kind():
    assert EXECUTORS == ("inprocess", "process", "ray")
    assert isinstance(make_executor("inprocess", threads=2), InProcessExecutor)
    pool = make_executor("process", workers=3, threads_per_worker=2)
    assert isinstance(pool, ProcessPoolExecutor)
    assert (pool.workers, pool.threads_per_worker) == (3, 2)
    ray_executor = make_executor("Ray", cpus_per_trial=0.5)
    assert isinstance(ray_executor, RayExecutor) and ray_executor.cpus_per_trial == 0.5
    for executor in (pool, ray_executor):
        assert isinstance(executor, TrialExecutor)


@pytest.mark.parametrize("name", ["threads", "", None])
def test_unknown_executor_name_lists_the_valid_ones(name):
    with pytest.raises(InvalidOptionError, match="'inprocess', 'process', 'ray'"):
        make_executor(name)


def test_unknown_executor_option_lists_the_accepted_ones():
    with pytest.raises(
        InvalidOptionError, match="does not take threads.*workers, threads_per_worker"
    ):
        make_executor("process", threads=2)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("process", {"workers": 0}, "workers must be a whole number >= 1"),
        ("process", {"workers": 1.5}, "workers must be a whole number >= 1"),
        ("process", {"workers": True}, "workers must be a whole number >= 1"),
        ("process", {"threads_per_worker": 0}, "threads_per_worker must be"),
        ("inprocess", {"threads": -1}, "threads must be a whole number >= 1"),
        ("ray", {"cpus_per_trial": 0}, "cpus_per_trial must be a number > 0"),
        ("ray", {"threads_per_trial": 0}, "threads_per_trial must be"),
        ("ray", {"address": 6379}, "address must be a Ray address string"),
        ("ray", {"init_kwargs": [("num_cpus", 2)]}, "init_kwargs must be a mapping"),
    ],
)
def test_bad_options_raise(name, kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        make_executor(name, **kwargs)


def test_map_before_start_raises():
    with pytest.raises(RuntimeError, match="needs start"):
        ProcessPoolExecutor().map([("square", 1)])


def test_start_rejects_what_cannot_reach_a_worker():
    executor = ProcessPoolExecutor(workers=1)
    with pytest.raises(InvalidOptionError, match="top level of an importable module"):
        executor.start(lambda context, task: task, None, on_error=toy.on_error)
    with pytest.raises(InvalidOptionError, match="context cannot be pickled"):
        executor.start(toy.trial, threading.Lock(), on_error=toy.on_error)
    assert executor._pool is None  # nothing was spawned


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    executor = RayExecutor()
    with pytest.raises(InvalidOptionError, match=r'pip install "zenml-quant\[ray\]"'):
        executor.start(toy.trial, _context(), on_error=toy.on_error)


# --- in process -------------------------------------------------------------------------------


def test_inprocess_runs_in_order_and_passes_the_context_as_is():
    context, calls = _context(), Calls()
    with InProcessExecutor() as executor:
        executor.start(toy.trial, context, on_error=toy.on_error)
        results = executor.map(
            [("square", 3), ("raise", "bad candidate"), ("info", 0)], callback=calls
        )
    assert results[0] == 9
    assert _is_error(results[1]) and results[1][1] == ("raise", "bad candidate")
    assert "the trial raised ValueError: bad candidate (at _executor_tasks.py" in results[1][2]
    info = results[2]
    assert info["pid"] == os.getpid() and info["context_id"] == id(context)
    assert info["unpickled"] == 0
    assert calls.calls == list(enumerate(results))


def test_inprocess_leaves_initialised_tensorflow_alone(caplog):
    from zenml_quant._compat import tf

    float(tf.reduce_sum(tf.ones((2, 2))))  # TensorFlow is initialised in this process
    before = tf.config.threading.get_intra_op_parallelism_threads()
    wanted = before + 3
    with caplog.at_level(logging.DEBUG, logger="zenml_quant.search.executors"):
        executor = InProcessExecutor(threads=wanted)
        executor.start(toy.trial, _context(), on_error=toy.on_error)
    assert executor.map([("square", 2)]) == [4]
    assert tf.config.threading.get_intra_op_parallelism_threads() == before
    assert "already initialised" in caplog.text and f"asked for {wanted}" in caplog.text


def test_inprocess_sets_threads_in_a_fresh_process_and_imports_neither_ray_nor_zenml():
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        from zenml_quant.search.executors import InProcessExecutor
        assert "ray" not in sys.modules, "executors imported ray"
        assert "zenml" not in sys.modules, "executors imported zenml"
        import _executor_tasks as toy
        executor = InProcessExecutor(threads=1)
        executor.start(toy.trial, toy.Context("fresh"), on_error=toy.on_error)
        (info,) = executor.map([("info", 0)])
        print("THREADS", info["intra"], info["inter"])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "THREADS 1 1" in done.stdout


# --- process pool -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    """A 2-worker pool whose context carries 2 MB (more than a pipe buffer)."""
    context = _context(payload_bytes=2_000_000)
    executor = ProcessPoolExecutor(workers=2, threads_per_worker=1)
    executor.start(toy.trial, context, on_error=toy.on_error)
    yield executor
    executor.close()
    assert executor._pool is None


def test_pool_runs_in_parallel_in_order_with_the_context_once_per_worker(pool):
    pool.warm_up()
    assert pool._pool.ready.value == 2
    calls = Calls()
    tasks = (
        [("sleep", 0.5)] * 4
        + [("square", 0), ("raise", "no good"), ("square", 2)]
        + [("info", 0)] * 4
    )
    results = pool.map(tasks, callback=calls)
    sleeps = results[:4]
    sleepers = {pid for pid, _, _ in sleeps}
    assert len(sleepers) == 2 and os.getpid() not in sleepers  # both workers took sleeps
    overlaps = [a for a in sleeps for b in sleeps if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]]
    assert overlaps, "no two sleeps ran at the same time"
    # An exception fails its own task only.
    assert results[4] == 0 and results[6] == 4
    assert results[5][:2] == ("error", ("raise", "no good"))
    assert "the trial raised ValueError: no good (at _executor_tasks.py" in results[5][2]
    infos = results[7:]
    assert all(info["unpickled"] == 1 for info in infos)  # once per worker, not per task
    assert all(info["payload_len"] == 2_000_000 for info in infos)
    assert {info["pid"] for info in infos} <= sleepers
    for info in infos:  # the thread limit, set before anything ran in the worker
        assert (info["intra"], info["inter"]) == (1, 1)  # TensorFlow's default is 0 ("auto")
        assert info["env"] == dict.fromkeys(
            ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"), "1"
        )
    assert sorted(index for index, _ in calls.calls) == list(range(len(tasks)))
    assert all(results[index] == result for index, result in calls.calls)


def test_pool_worker_deaths_fail_their_tasks_only_and_the_pool_recovers():
    # One worker runs the tasks in order: each death breaks the pool before the later tasks
    # start, and they must survive every break.
    calls = Calls()
    tasks = [("kill", 0), ("square", 2), ("native", "abort"), ("square", 3)]
    with ProcessPoolExecutor(workers=1) as executor:
        executor.start(toy.trial, _context(), on_error=toy.on_error)
        results = executor.map(tasks, callback=calls)
        assert [results[i] for i in (1, 3)] == [4, 9]
        killed, aborted = results[0], results[2]
        assert killed[:2] == ("error", ("kill", 0))
        assert "worker process running this trial died" in killed[2]
        assert "was killed by SIGKILL (signal 9)" in killed[2] and "lower `workers`" in killed[2]
        # The first task of a fresh worker is blamed at once; the abort came after a square in
        # the same worker, so it was run again alone in a fresh one before it was blamed.
        assert "fresh worker" not in killed[2]
        assert aborted[:2] == ("error", ("native", "abort"))
        assert "was killed by SIGABRT (signal 6)" in aborted[2]
        assert "run once more, alone in a fresh worker, and that one died too" in aborted[2]
        # faulthandler's report, innermost frame first, without TensorFlow's start-up lines.
        assert "Fatal Python error: Aborted" in aborted[2]
        assert "in native_crash" in aborted[2] and "oneDNN custom operations" not in aborted[2]
        # Its last run was alone in a worker with oneDNN's kernels off, and that died too.
        assert "oneDNN kernels off (TF_ENABLE_ONEDNN_OPTS=0), died as well" in aborted[2]
        assert sorted(index for index, _ in calls.calls) == list(range(4))  # once each
        # It died without oneDNN too, so oneDNN was not the cause: the default kernels stay.
        assert not executor.onednn_off
        assert executor.map([("square", 6), ("square", 7)]) == [36, 49]


def test_a_crash_left_by_earlier_tasks_is_not_blamed_on_the_task_it_hits(caplog):
    # The task crashes only in a worker that ran something before: run again alone in a
    # fresh worker, it succeeds.
    with ProcessPoolExecutor(workers=1) as executor, caplog.at_level(logging.WARNING):
        executor.start(toy.trial, _context(), on_error=toy.on_error)
        results = executor.map([("info", 0), ("crash_unless_first", "segfault")])
    first_worker = results[0]["pid"]
    assert results[1][0] == "first" and results[1][1] != first_worker
    assert "SIGSEGV" in caplog.text and "running it again alone in a fresh worker" in caplog.text


def test_a_trial_that_crashes_in_onednn_runs_without_it_and_so_does_the_rest(caplog, monkeypatch):
    # TensorFlow's oneDNN kernels crash on some MobileNetV2 candidates in training: the trial
    # runs once more in a worker with them off. It runs clean, so oneDNN was the cause, and
    # the rest of the search (this map and the next) runs without them instead of crashing
    # first each time.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with ProcessPoolExecutor(workers=1) as executor, caplog.at_level(logging.WARNING):
        executor.start(toy.trial, _context(), on_error=toy.on_error)
        assert not executor.onednn_off
        results = executor.map(
            [("crash_with_onednn", "segfault"), ("square", 3), ("crash_with_onednn", "abort")]
        )
        after = executor.map([("info", 0)])[0]
        assert executor.onednn_off
    assert results[0][0] == results[2][0] == "without oneDNN" and results[1] == 9
    assert caplog.text.count("SIGSEGV") >= 1 and "SIGABRT" not in caplog.text
    assert "the rest of this search runs without them" in caplog.text
    assert after["onednn"] == "0"


def test_a_result_reporting_native_trouble_is_rerun_in_fresh_workers(caplog, monkeypatch):
    # MobileNetV2's fine-tuning raised AbortedError in one worker for several trials in a row:
    # the worker lived, but its state did not. Such a result is handled like a crash.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with ProcessPoolExecutor(workers=1) as executor, caplog.at_level(logging.WARNING):
        executor.start(toy.trial, _context(), on_error=toy.on_error, native_failure=toy.troubled)
        results = executor.map([("square", 2), ("aborted_unless_first", 0), ("square", 3)])
        assert results[0] == 4 and results[2] == 9
        # Rerun alone in a fresh worker, it ran clean: that result stands, oneDNN stays on.
        assert results[1][0] == "first" and not executor.onednn_off
        assert "reported native trouble (AbortedError" in caplog.text
        assert "running it again alone in a fresh worker" in caplog.text

        caplog.clear()
        results = executor.map([("aborted_with_onednn", 0), ("square", 5)])
        # In a fresh worker it failed again; without oneDNN it held, so the rest runs so.
        assert results == [("without oneDNN", results[0][1]), 25] and executor.onednn_off
        assert "the rest of this search runs without them" in caplog.text


def test_native_trouble_that_follows_the_trial_everywhere_is_its_own_result(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    with ProcessPoolExecutor(workers=1) as executor:
        executor.start(toy.trial, _context(), on_error=toy.on_error, native_failure=toy.troubled)
        results = executor.map([("aborted", 0), ("square", 4)])
        pids = {results[0][1]}
        # The task's own result (not "the worker died"), after a fresh worker and a run
        # without oneDNN; that run failed too, so the default kernels come back.
        assert results[0][0] == "aborted" and results[1] == 16
        assert not executor.onednn_off
        assert executor.map([("aborted", 0)])[0][1] not in pids  # a fresh worker each time
        with pytest.raises(InvalidOptionError, match="native_failure must be a callable"):
            ProcessPoolExecutor(workers=1).start(
                toy.trial, _context(), on_error=toy.on_error, native_failure="yes"
            )


def test_no_onednn_rerun_when_the_caller_turned_onednn_off(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not onednn_enabled()
    with ProcessPoolExecutor(workers=1) as executor:
        executor.start(toy.trial, _context(), on_error=toy.on_error)
        results = executor.map([("native", "segfault")])
    assert results[0][:2] == ("error", ("native", "segfault"))
    assert "SIGSEGV" in results[0][2] and "oneDNN kernels off" not in results[0][2]


def test_workers_that_die_at_start_up_fail_the_tasks_instead_of_looping():
    with ProcessPoolExecutor(workers=1) as executor:
        executor.start(toy.trial, toy.CrashingContext("crash"), on_error=toy.on_error)
        results = executor.map([("square", 1), ("square", 2)])
    assert len(results) == 2
    for task, result in zip([1, 2], results):
        assert result[:2] == ("error", ("square", task))
        assert "worker processes died twice before this trial finished" in result[2]
        assert "SIGSEGV" in result[2] and "__setstate__" in result[2]


def test_pool_reruns_trials_that_were_running_next_to_a_crash_one_at_a_time(pool, caplog, tmp_path):
    pool.warm_up()  # both workers up, so the two trials run side by side
    marker = str(tmp_path / "sleeper-running")
    tasks = [("mark_and_sleep", (marker, 1.0)), ("exit_when_marked", marker), ("square", 7)]
    with caplog.at_level(logging.WARNING, logger="zenml_quant.search.executors"):
        results = pool.map(tasks)
    # Both were running when the worker died, so both were suspects and ran again alone: the
    # sleeper succeeded (a fresh marker was written), the crasher died again and failed.
    assert "2 trial(s) were running" in caplog.text
    assert results[0][0] == "slept" and results[2] == 49
    assert results[1][:2] == ("error", ("exit_when_marked", marker))
    assert "worker process running this trial died" in results[1][2]


def test_workers_need_no_main_guard_when_they_do_not_import_main(tmp_path):
    # A spawned worker runs the caller's script again, unless import_main=False: then a
    # script without `if __name__ == "__main__":` runs once and its pool works.
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {TESTS_DIR!r})
            import _executor_tasks as toy
            from zenml_quant.search.executors import ProcessPoolExecutor
            print("SCRIPT RUNS", flush=True)
            with ProcessPoolExecutor(workers=1, import_main=False) as executor:
                executor.start(toy.trial, toy.Context("unguarded"), on_error=toy.on_error)
                print("RESULT", executor.map([("square", 7)]), flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESULT [49]" in done.stdout
    assert done.stdout.count("SCRIPT RUNS") == 1  # the worker did not run it again


def _process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_workers_exit_when_their_search_is_killed(tmp_path):
    # A search killed from outside cannot shut its pool down; its workers must not go on
    # computing trials nobody reads.
    marker = tmp_path / "running"
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        import _executor_tasks as toy
        from zenml_quant.search.executors import ProcessPoolExecutor
        executor = ProcessPoolExecutor(workers=1, import_main=False)
        executor.start(toy.trial, toy.Context("orphan"), on_error=toy.on_error)
        executor.map([("mark_and_sleep", ({str(marker)!r}, 300))])
        """
    )
    search = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (marker.exists() and marker.read_text()):
            assert search.poll() is None, "the search ended before its worker started"
            assert time.monotonic() < deadline, "the worker never started its task"
            time.sleep(0.2)
        worker = int(marker.read_text())
        assert not _process_gone(worker)
    finally:
        search.kill()
        search.wait()
    deadline = time.monotonic() + 30
    while not _process_gone(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _process_gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker was still running 30 s after its search was killed")


# --- Ray --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster, started (and so shut down) by a RayExecutor.

    Under pytest-xdist each worker process that runs a test using it starts its own cluster,
    so the Ray checks share one test: one cluster per run.
    """
    ray = pytest.importorskip("ray")
    psutil = pytest.importorskip("psutil")  # a Ray dependency
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    assert not ray.is_initialized()
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    owner = RayExecutor(
        init_kwargs={
            "num_cpus": 2,
            "include_dashboard": False,
            "object_store_memory": 100 * 2**20,
            "log_to_driver": False,
        }
    )
    owner.start(toy.trial, _context(), on_error=toy.on_error)
    assert ray.is_initialized()
    # gcs, raylet, agents: what this cluster started (not, say, a process pool's workers)
    started = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    try:
        yield ray
    finally:
        for process in list(started):  # and the Ray workers started since
            try:
                started.extend(process.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        owner.close()
        # Ray's agents exit on their own once the raylet is gone; on a loaded machine one can
        # hang on the way out, so end any of the processes this cluster started still left.
        _, alive = psutil.wait_procs(started, timeout=20)
        for process in alive:
            process.terminate()
        psutil.wait_procs(alive, timeout=5)
    assert not ray.is_initialized()  # the executor that started Ray shut it down


def test_ray_executor_on_a_local_cluster(ray_cluster):
    calls = Calls()
    tasks = [("square", i) for i in range(5)] + [("raise", "bad")] + [("info", 0)] * 4
    with RayExecutor(cpus_per_trial=1, threads_per_trial=1) as executor:
        executor.start(toy.trial, _context(payload_bytes=1_000_000), on_error=toy.on_error)
        results = executor.map(tasks, callback=calls)

        assert results[:5] == [0, 1, 4, 9, 16]
        assert results[5][:2] == ("error", ("raise", "bad"))
        assert "the trial raised ValueError: bad" in results[5][2]
        infos = results[6:]
        assert all(info["pid"] != os.getpid() for info in infos)
        assert all(info["unpickled"] == 1 for info in infos)  # once per worker, not per task
        assert all(info["payload_len"] == 1_000_000 for info in infos)
        for info in infos:
            assert (info["intra"], info["inter"]) == (1, 1)
            assert info["env"]["TF_NUM_INTRAOP_THREADS"] == "1"
            assert info["env"]["OMP_NUM_THREADS"] == "1"
        assert sorted(index for index, _ in calls.calls) == list(range(len(tasks)))

        # A worker that dies fails its own trial; Ray starts another for the next one.
        results = executor.map([("square", 2), ("kill", 0), ("square", 3)])
        assert results[0] == 4 and results[2] == 9
        assert results[1][:2] == ("error", ("kill", 0))
        assert "Ray worker running this trial died" in results[1][2]
        assert executor.map([("square", 4)]) == [16]
    assert ray_cluster.is_initialized()  # it used the running Ray, so it left it running
