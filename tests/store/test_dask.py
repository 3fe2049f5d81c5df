"""`--dask`: the same store from the tasks of a real Dask cluster (a distributed.LocalCluster of
two worker processes, one thread each) as from a local run, on the bundled captures and the corpus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas.testing as pdt
import pytest

from inspector.analysis.tables import TABLE_NAMES
from inspector.errors import InspectorError
from inspector.parse.connection import ParserOptions
from inspector.store import open_store, store_inputs
from inspector.store.build import analyze_into_store
from tests.conftest import REPO, bundled_files, corpus_files

distributed = pytest.importorskip("distributed", reason="the Dask tests need the distributed package (pip install -e '.[test]')")

BUNDLED = [str(path) for path in bundled_files()]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None) as local:
        yield local


def assert_same_store(left: Path, right: Path) -> None:
    with open_store(left) as one, open_store(right) as other:
        assert one.meta["warnings"] == other.meta["warnings"] and one.meta["rows"] == other.meta["rows"]
        for name in TABLE_NAMES:
            pdt.assert_frame_equal(one.table(name), other.table(name), check_exact=True, obj=name)


def local_and_dask(paths: list[str], tmp_path: Path, address: str, jobs: int | None = None) -> tuple[Path, Path]:
    inputs = store_inputs(paths, ParserOptions())
    local, _ = analyze_into_store(paths, tmp_path / "local", inputs, jobs=2)
    on_dask, _ = analyze_into_store(paths, tmp_path / "dask", inputs, jobs=jobs, dask=address)
    return local, on_dask


def test_bundled_captures_on_a_dask_cluster_give_the_local_store(tmp_path: Path, cluster):
    local, on_dask = local_and_dask(BUNDLED, tmp_path, cluster.scheduler_address)
    assert_same_store(local, on_dask)
    assert sorted(os.listdir(on_dask)) == sorted([*TABLE_NAMES, "store.json"])
    # Written by the tasks: a writer per capture file and shard (two shards: two workers).
    assert {path.name.split("-")[1] for path in (on_dask / "ws_frames").iterdir()} >= {"f0s0", "f0s1"}


def test_the_corpus_on_a_dask_cluster_gives_the_local_store(tmp_path: Path, cluster):
    files = [str(path) for path in corpus_files()]
    if not files:
        pytest.skip("corpus folder ../shared/corpus not present")
    local, on_dask = local_and_dask(files, tmp_path, cluster.scheduler_address, jobs=3)
    assert_same_store(local, on_dask)


def test_a_scheduler_that_is_not_there_is_one_clear_error(tmp_path: Path):
    with pytest.raises(InspectorError, match=r"tcp://127.0.0.1:9: cannot reach the Dask scheduler"):
        analyze_into_store(BUNDLED[:1], tmp_path / "store", store_inputs(BUNDLED[:1], ParserOptions()), dask="tcp://127.0.0.1:9")
    assert os.listdir(tmp_path) == []


def test_the_cli_analyses_on_dask_into_a_store(tmp_path: Path, cluster):
    store = tmp_path / "store"
    done = subprocess.run([sys.executable, "-m", "inspector.cli", "analyze", BUNDLED[1], "--store", str(store),
                           "--dask", cluster.scheduler_address], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    local, _ = analyze_into_store(BUNDLED[1:2], tmp_path / "local", store_inputs(BUNDLED[1:2], ParserOptions()))
    assert_same_store(local, store)


def test_a_worker_killed_mid_task_has_its_task_run_again_and_the_store_is_whole(tmp_path: Path):
    # One WebSocket connection of 100,000 echoed messages (about 300,000 packets): its shard's
    # task runs for seconds, long enough to kill the worker process running it.
    from tests.conversations import capture_of, ws_upgrade
    from tests.factories import ws_frame

    echo = [turn for index in range(100_000) for turn in ((0, ws_frame(b"tick %d" % index, masked=True)), (1, ws_frame(b"tock %d" % index)))]
    capture = tmp_path / "long.pcap"
    capture.write_bytes(capture_of(ws_upgrade() + echo))
    paths = [str(capture)]
    inputs = store_inputs(paths, ParserOptions())
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None) as local, \
            distributed.Client(local) as client:
        running = ThreadPoolExecutor(1).submit(analyze_into_store, paths, tmp_path / "dask", inputs, dask=local.scheduler_address)
        deadline = time.monotonic() + 60
        busy = []
        while not busy and time.monotonic() < deadline:
            busy = [worker for worker, keys in client.processing().items() if any("analyze_shard_task" in str(key) for key in keys)]
            time.sleep(0.05)
        assert busy, "no analysis task was seen running"
        time.sleep(0.5)  # well into the task
        pids = client.run(os.getpid, workers=busy[:1])
        os.kill(pids[busy[0]], signal.SIGKILL)
        on_dask, _ = running.result(timeout=300)
    local_store, _ = analyze_into_store(paths, tmp_path / "local", inputs)
    assert_same_store(local_store, on_dask)
    left = sorted(str(path.relative_to(on_dask)) for path in on_dask.rglob("*") if path.name.startswith(".") or ".raw" in path.parts)
    assert left == []  # no raw rows, no half-written part
