"""Scale-out: --jobs (runs in worker processes), --shard K/N (shares of the grid into one output) and
--num-nodes (multi-node DDP under torchrun), end to end through the command line on generated data."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from spinalnet.commands.cli import main
from spinalnet.engine.machine import LAUNCHER_VARIABLES, cpu_cores

# two arms keep these end-to-end runs short; tests/test_compare.py runs the default three
TRAIN_FAST = ["--model", "default-cnn", "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--no-progress"]
FAST = [*TRAIN_FAST, "--heads", "fc,spinal"]
CHILDREN = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()  # Linux: a process's children
STATS = ("difference_mean", "difference_ci95", "p_value", "p_value_wilcoxon", "prob_improvement", "better_in",
         "error_reduction_pct")


def spinalnet(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}  # not a multi-node launch
    return subprocess.run([sys.executable, "-m", "spinalnet", *args], capture_output=True, text=True,
                          timeout=timeout, env={**clean, **(env or {})})


@pytest.fixture
def cli(monkeypatch, capsys) -> Callable[..., subprocess.CompletedProcess]:
    """The command run in this process (``main``), answering as :func:`spinalnet` does, for the tests whose subject
    is not a process of its own (workers, signals, launchers): no new Python importing torch for every call."""
    for name in LAUNCHER_VARIABLES:  # not a multi-node launch
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as end:  # argparse's --help
            code = end.code or 0
        printed = capsys.readouterr()
        return subprocess.CompletedProcess(["spinalnet", *args], code, printed.out, printed.err)

    return run


def one_error_line(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinalnet: error: "), done.stderr[-2000:]
    return lines[0]


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def run_accuracies(out: Path) -> dict[str, float]:
    return {d.name: json.loads((d / "result.json").read_text())["test_acc"] for d in sorted((out / "runs").iterdir())}


@pytest.mark.skipif(cpu_cores() < 2, reason="--jobs 2 needs two cores")
@pytest.mark.slow
def test_jobs_two_gives_the_one_process_result_and_files(npz_file, tmp_path):
    """Two workers on two cores, one thread each, against one process with one thread: the same runs,
    bitwise the same numbers, the same files; every worker line names its run."""
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "2"]
    one = spinalnet(*common, "--output", str(tmp_path / "one"), env={"OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr[-2000:]
    two = spinalnet(*common, "--jobs", "2", "--output", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-2000:]
    assert "training 4 runs in 2 worker processes (1 CPU thread(s) each)" in two.stdout
    assert "[fc seed 1] epoch 1/1: train loss" in two.stdout  # a worker's own line, prefixed
    assert run_accuracies(tmp_path / "two") == run_accuracies(tmp_path / "one")
    a, b = results(tmp_path / "one"), results(tmp_path / "two")
    for head in ("fc", "spinal"):
        assert a["arms"][head]["test_acc"] == b["arms"][head]["test_acc"]
    for key in STATS:
        assert a["contrasts"][0][key] == b["contrasts"][0][key], key
    names = lambda out: sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if "checkpoints" not in p.parts)  # noqa: E731
    assert names(tmp_path / "one") == names(tmp_path / "two")


def test_shards_one_after_another_give_the_unsharded_result(npz_file, tmp_path, cli):
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "2"]
    shared = tmp_path / "shared"
    first = cli(*common, "--shard", "1/2", "--output", str(shared))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "shard 1/2: 2 of the 4 runs" in first.stdout and "2 of the 4 runs of the comparison are done" in first.stdout
    assert sorted(p.name for p in (shared / "runs").iterdir()) == ["fc-seed0", "spinal-seed0"]
    assert not (shared / "results.json").exists()  # not every run is finished yet
    second = cli(*common, "--shard", "2/2", "--output", str(shared))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "wrote " in second.stdout and (shared / "summary.png").is_file()
    whole = cli(*common, "--output", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert run_accuracies(shared) == run_accuracies(tmp_path / "whole")
    a, b = results(shared), results(tmp_path / "whole")
    for key in STATS:
        assert a["contrasts"][0][key] == b["contrasts"][0][key], key
    for head in ("fc", "spinal"):
        assert a["arms"][head]["test_acc"] == b["arms"][head]["test_acc"]
        assert a["arms"][head]["params"] == b["arms"][head]["params"]
    # a shard run again on the finished comparison reports it and trains nothing
    again = cli(*common, "--shard", "1/2", "--output", str(shared))
    assert again.returncode == 0 and "finished earlier, stored result" in again.stdout


def test_a_shard_with_other_options_is_refused_before_it_writes(npz_file, tmp_path, cli):
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "2", "--output", str(tmp_path / "s")]
    assert cli(*common, "--shard", "1/2").returncode == 0
    before = sorted(p.as_posix() for p in (tmp_path / "s").rglob("*"))
    line = one_error_line(cli(*common, "--shard", "2/2", "--lr", "0.1"))
    assert "started with lr=0.05, this shard has lr=0.1" in line
    line = one_error_line(cli(*common, "--shard", "2/2", "--seeds", "3"))
    assert "seeds=2" in line and "seeds=3" in line
    assert sorted(p.as_posix() for p in (tmp_path / "s").rglob("*")) == before


def test_report_and_resume_write_the_summary_of_finished_shards(npz_file, tmp_path, cli):
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "1", "--output", str(tmp_path / "s")]
    for k in ("1/2", "2/2"):
        assert cli(*common, "--shard", k).returncode == 0
    written = results(tmp_path / "s")
    (tmp_path / "s" / "results.json").unlink()  # as if the last shard was killed before its summary
    report = cli("report", str(tmp_path / "s"), "--markdown")
    assert report.returncode == 0, report.stderr
    assert "wrote the summary" in report.stderr and "| " in report.stdout
    assert results(tmp_path / "s")["contrasts"] == written["contrasts"]
    (tmp_path / "s" / "results.json").unlink()
    resumed = cli(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.count("finished earlier, kept") == 2
    assert results(tmp_path / "s")["arms"]["spinal"]["test_acc"] == written["arms"]["spinal"]["test_acc"]


def test_report_on_unfinished_shards_names_what_is_missing(npz_file, tmp_path, cli):
    out = tmp_path / "s"
    assert cli("compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "1", "--shard", "1/2",
                     "--output", str(out)).returncode == 0
    line = one_error_line(cli("report", str(out)))
    assert "1 of the 2 runs of this comparison are finished" in line


@pytest.mark.parametrize("args, message", [
    (["--shard", "0/2"], "--shard must be K/N with 1 <= K <= N"),
    (["--shard", "3/2"], "--shard must be K/N"),
    (["--shard", "a/b"], "--shard must be K/N"),
    (["--shard", "1/2", "--force"], "--force cannot be used with --shard"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--jobs", "two"], "--jobs must be a whole number"),
    (["--jobs", "999"], "each worker needs one; use at most --jobs"),
    (["--jobs", "999", "--seeds", "1", "--shard", "1/2"], "use at most --jobs"),  # refused even with one run
    (["--jobs", "2", "--devices", "2", "--accelerator", "cpu"], "use one or the other"),
    (["--num-nodes", "2"], "--num-nodes 2 needs the same command started on every node"),
])
def test_bad_scale_out_options_are_one_line_and_write_nothing(npz_file, tmp_path, args, message, cli):
    out = tmp_path / "out"
    line = one_error_line(cli("compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "2",
                                    "--output", str(out), *args))
    assert message in line
    assert not out.exists()


def test_shard_needs_an_output(npz_file, cli):
    line = one_error_line(cli("compare", "--dataset", f"npz:{npz_file}", *FAST, "--shard", "1/2"))
    assert "--shard needs --output" in line
    line = one_error_line(cli("reproduce", "fashion-mnist-default-cnn", "--shard", "1/2"))
    assert "--shard needs --output" in line


def test_reproduce_takes_the_scale_out_options(cli):
    done = cli("reproduce", "--help")
    for flag in ("--jobs", "--shard", "--num-nodes"):
        assert flag in done.stdout
    line = one_error_line(cli("reproduce", "regression", "--jobs", "2"))
    assert "--jobs" in line


@pytest.mark.skipif(cpu_cores() < 2, reason="two workers need two cores")
@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_resume_finishes(npz_file, tmp_path):
    out = tmp_path / "c"
    args = ["compare", "--dataset", f"npz:{npz_file}", "--model", "default-cnn", "--epochs", "100", "--batch-size",
            "16", "--lr", "0.01", "--no-progress", "--seeds", "2", "--jobs", "2", "--output", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "spinalnet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + 120, set()
    while time.monotonic() < deadline and len(seen) < 2:  # both workers are training
        line = proc.stdout.readline()
        if "] epoch 2/100" in line:  # epoch 1 is checkpointed (checkpoints are written after the line)
            seen.add(line.split("]")[0])
    assert len(seen) == 2, "the workers did not start training"
    workers = _workers_of(proc.pid) if CHILDREN else []
    if CHILDREN:
        assert len(workers) == 2
    proc.send_signal(signal.SIGINT)  # to the parent alone: it passes Ctrl-C on to its workers
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    (line,) = stderr.strip().splitlines()
    prefix = "spinalnet: interrupted; continue with: spinalnet "
    assert line.startswith(prefix) and line.endswith(f"--output {out} --resume"), line
    assert not (out / "results.json").exists()
    assert len(list(out.glob("runs/*/checkpoints/last.ckpt"))) >= 2  # both interrupted runs can continue
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no worker left behind
    resumed = spinalnet(*shlex.split(line[len(prefix):]), timeout=400)  # the printed command
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(results(out)["arms"]["spinal"]["test_acc"]) == 2


@pytest.mark.skipif(cpu_cores() < 2, reason="two workers need two cores")
@pytest.mark.slow
def test_a_failed_run_fails_the_comparison_with_its_own_line(npz_file, tmp_path):
    done = spinalnet("compare", "--dataset", f"npz:{npz_file}", "--model", "default-cnn", "--epochs", "1",
                     "--batch-size", "32", "--lr", "1e30", "--no-progress", "--seeds", "1", "--jobs", "2",
                     "--output", str(tmp_path / "f"))
    line = one_error_line(done, code=1)
    assert line.startswith("spinalnet: error: [") and " seed 0] " in line


def _workers_of(pid: int) -> list[int]:
    """The pool's worker processes among ``pid``'s children (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(cpu_cores() < 2 or not CHILDREN, reason="two cores and Linux's /proc/PID/task/PID/children")
@pytest.mark.slow
def test_a_killed_worker_fails_the_comparison_with_one_line(npz_file, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "spinalnet", "compare", "--dataset", f"npz:{npz_file}", "--model",
                             "default-cnn", "--epochs", "100", "--batch-size", "16", "--lr", "0.01", "--no-progress",
                             "--seeds", "2", "--jobs", "2", "--output", str(tmp_path / "k")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "] epoch 1/100" not in proc.stdout.readline():
        pass
    workers = _workers_of(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr[-2000:]
    (line,) = stderr.strip().splitlines()
    assert line.startswith("spinalnet: error: a worker process died before its run ended (killed, or out of memory?); "
                           "finished runs are kept; to continue it: spinalnet compare ")
    assert line.endswith(f"--output {tmp_path / 'k'} --resume")


@pytest.mark.slow
def test_train_help_shows_num_nodes_and_nodes_share_one_output(npz_file):
    assert "--num-nodes" in spinalnet("train", "--help").stdout
    launched = {"NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}
    line = one_error_line(spinalnet("train", "--dataset", f"npz:{npz_file}", *TRAIN_FAST, "--num-nodes", "2", env=launched))
    assert "--num-nodes needs --output" in line


def _free_port() -> int:
    """A port no process listens on now, chosen by the OS (bind to port 0); torchrun's rendezvous takes it next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_nodes_of_one_cpu_process_each(npz_file, tmp_path):
    """Two torchrun "nodes" on the loopback address, one gloo CPU process each, make one DDP run."""
    out = tmp_path / "ddp"
    port = _free_port()
    command = lambda rank: [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",  # noqa: E731
                            "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                            "-m", "spinalnet", "train", "--dataset", f"npz:{npz_file}", *TRAIN_FAST, "--epochs", "2",
                            "--accelerator", "cpu", "--devices", "1", "--num-nodes", "2", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    logs = [(tmp_path / f"node{rank}.out", tmp_path / f"node{rank}.err") for rank in (0, 1)]
    nodes = []
    for rank, (out_log, err_log) in enumerate(logs):  # files, not pipes: a full pipe would stall a node
        with open(out_log, "w") as stdout, open(err_log, "w") as stderr:
            nodes.append(subprocess.Popen(command(rank), stdout=stdout, stderr=stderr, env=env))
    deadline = time.monotonic() + 240
    for node in nodes:  # each node's end is the event waited for; a node still running then is killed
        try:
            node.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    outputs = [(out_log.read_text(), err_log.read_text()) for out_log, err_log in logs]
    for rank, (node, (_, stderr)) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, (rank, node.returncode, [err[-2000:] for _, err in outputs])
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["num_nodes"] == 2
    assert result["test_acc"] > 50  # learnt (4 classes)
    assert "test accuracy" in outputs[0][0] and "test accuracy" not in outputs[1][0]  # rank zero prints


def test_shards_partition_the_grid_into_consecutive_near_equal_parts():
    from spinalnet.comparison.grid import GridRun, grid
    from spinalnet.comparison.grid import share

    runs = [(r.arm, r.seed) for r in grid(["fc", "spinal"], {}, 3, 5)]
    assert runs[:3] == [("fc", 3), ("spinal", 3), ("fc", 4)]
    for n in (1, 2, 3, 4, 7, 10, 12):
        parts = [share(runs, (k, n)) for k in range(1, n + 1)]
        assert [r for part in parts for r in part] == runs  # every run once, in order
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert share(runs, (2, 5)) == [("fc", 4), ("spinal", 4)]  # a seed's pair stays together when N divides it


def test_shards_must_agree_on_their_number_and_fit_the_grid(npz_file, tmp_path, cli):
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "2", "--output", str(tmp_path / "s")]
    line = one_error_line(cli(*common, "--shard", "1/5"))  # 4 runs
    assert "this comparison has 4 runs (heads x tuning values x --seeds), so at most 4 shards" in line
    assert not (tmp_path / "s").exists()
    assert cli(*common, "--shard", "1/3").returncode == 0
    before = sorted(p.as_posix() for p in (tmp_path / "s").rglob("*"))
    line = one_error_line(cli(*common, "--shard", "2/2"))  # another split would leave a run untrained
    assert "it is split into 3 shards; use K/3" in line
    assert sorted(p.as_posix() for p in (tmp_path / "s").rglob("*")) == before


@pytest.mark.parametrize("damage, message", [
    ("[1, 2]", "not a comparison record written by spinalnet"),
    ('{"options": "x"}', "not a comparison record written by spinalnet"),
    ('{"options": {"lr": 0.0', "not a readable JSON file"),
    ("", "not a readable JSON file"),
])
def test_a_damaged_record_is_one_line_naming_it(npz_file, tmp_path, damage, message, cli):
    out = tmp_path / "s"
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "1", "--output", str(out)]
    assert cli(*common, "--shard", "1/2").returncode == 0
    (out / "comparison.json").write_text(damage)
    for args in ((*common, "--shard", "2/2"), ("report", str(out))):
        line = one_error_line(cli(*args))
        assert str(out / "comparison.json") in line and message in line
    assert not (out / "runs" / "spinal-seed0").exists()


def test_a_cut_off_run_result_is_named_before_a_shard_trains(npz_file, tmp_path, cli):
    out = tmp_path / "s"
    common = ["compare", "--dataset", f"npz:{npz_file}", *FAST, "--seeds", "1", "--output", str(out)]
    assert cli(*common, "--shard", "1/2").returncode == 0
    result = out / "runs" / "fc-seed0" / "result.json"
    result.write_text(result.read_text()[:40])
    line = one_error_line(cli(*common, "--shard", "2/2"))
    assert str(result) in line and "not a readable JSON file" in line
    assert not (out / "runs" / "spinal-seed0").exists()  # refused before training
