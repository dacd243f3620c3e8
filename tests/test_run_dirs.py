"""Run directories: kinds, --resume and --force rules, file permissions, Ctrl-C, per-epoch lines."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from spinalnet.commands.cli import main
from spinalnet.files import atomic_write_text, write_json
from spinalnet.rundir import MARKER

RUN = [sys.executable, "-m", "spinalnet"]


def _train(npz: Path, out: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["train", "--dataset", f"npz:{npz}", "--epochs", str(epochs), "--batch-size", "32", "--output", str(out),
            "--no-progress", *extra]


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinalnet: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_results_are_readable_under_umask_022_and_replaced_files_keep_their_mode(tmp_path, umask_022):
    atomic_write_text(tmp_path / "new.txt", "a")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
    (tmp_path / "shared.md").write_text("x")
    os.chmod(tmp_path / "shared.md", 0o664)
    atomic_write_text(tmp_path / "shared.md", "y")
    assert (tmp_path / "shared.md").stat().st_mode & 0o777 == 0o664

    import matplotlib.pyplot as plt

    from spinalnet.plots import save_figure

    save_figure(plt.figure(), tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_regress_and_report_files_follow_the_umask(tmp_path, umask_022, capsys):
    run = tmp_path / "run"
    assert main(["regress", "--target", "sum", "--samples", "60", "--epochs", "2", "--seeds", "1",
                 "--output", str(run)]) == 0
    assert {p.name: p.stat().st_mode & 0o777 for p in run.iterdir()} == \
        dict.fromkeys(["results.json", "results.csv", "predictions.npz", "regression.png", MARKER], 0o644)
    out = tmp_path / "RESULTS.md"
    out.write_text("# head\n")
    os.chmod(out, 0o664)  # group-writable on purpose: report keeps it so
    assert main(["report", str(run), "--output", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o664 and out.read_text().startswith("# head\n")


def test_train_resume_rules(npz_file, tmp_path, capsys, umask_022):
    out = tmp_path / "run"
    assert main(_train(npz_file, out)) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/1: train loss " in printed and "val acc" in printed and "ETA" in printed
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert set(modes) >= {"result.json", "metrics.csv", "best.ckpt", "last.ckpt", MARKER}
    assert set(modes.values()) == {0o644}
    first = json.loads((out / "result.json").read_text())
    assert first["train_seconds"] > 0 and first["images_per_second"] > 0
    before = _tree(out)

    # a finished run is reported, not re-tested; nothing is rewritten
    assert main([*_train(npz_file, out), "--resume"]) == 0
    assert "finished earlier, stored result" in capsys.readouterr().out
    assert _tree(out) == before

    # every option that changes the result is checked
    for option, value in (("--lr", "0.5"), ("--augment", "crop"), ("--momentum", "0.5"), ("--weight-decay", "0.1"),
                          ("--label-smoothing", "0.1"), ("--limit-batches", "0.5"), ("--image-size", "32")):
        assert main([*_train(npz_file, out), "--resume", option, value]) == 2
        assert "cannot resume from" in _error(capsys)
    assert _tree(out) == before

    # resuming to more epochs keeps the earlier epochs' metrics and times the whole run
    assert main([*_train(npz_file, out, epochs=2), "--resume"]) == 0
    capsys.readouterr()
    second = json.loads((out / "result.json").read_text())
    epochs = [line.split(",")[0] for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert "0" in epochs and "1" in epochs
    assert second["epochs"] == 2 and len(second["val_acc_curve"]) == 2
    assert second["train_seconds"] > first["train_seconds"] and second["images_per_second"] > 0


def test_resume_refuses_empty_missing_and_foreign_directories(npz_file, tmp_path, capsys):
    assert main([*_train(npz_file, tmp_path / "missing"), "--resume"]) == 2
    assert "nothing to resume in" in _error(capsys)
    (tmp_path / "empty").mkdir()
    assert main([*_train(npz_file, tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume in" in _error(capsys)
    compare_dir = tmp_path / "cmp"
    write_json(compare_dir / MARKER, {"kind": "compare"})
    before = _tree(compare_dir)
    for extra in (["--resume"], ["--force"], []):
        assert main([*_train(npz_file, compare_dir), *extra]) == 2
        assert "holds an unfinished compare run, not a train run" in _error(capsys)
    assert _tree(compare_dir) == before
    assert not (tmp_path / "missing").exists() and list((tmp_path / "empty").iterdir()) == []


def test_lightning_misconfiguration_is_one_line_and_writes_nothing(npz_file, tmp_path, capsys):
    assert main([*_train(npz_file, tmp_path / "o"), "--strategy", "no-such-strategy"]) == 2
    assert "no-such-strategy" in _error(capsys)
    assert not (tmp_path / "o").exists()


def test_nan_in_the_first_epoch_says_no_checkpoint_was_written(npz_file, tmp_path, capsys, monkeypatch):
    import spinalnet.engine.module as module

    real = module.F.cross_entropy
    monkeypatch.setattr(module.F, "cross_entropy", lambda logits, y, **kw: real(logits, y, **kw) * float("nan"))
    assert main(_train(npz_file, tmp_path / "nan")) == 1
    err = capsys.readouterr().err
    assert "the training loss became nan" in err and "no checkpoint was written" in err and "kept" not in err


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def _has_mapped(pid: int, path_part: str) -> bool:
    """Whether process ``pid`` has mapped a file whose path holds ``path_part`` (Linux: /proc/PID/maps): a
    library's shared objects appear there when its import loads them."""
    try:
        return path_part in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupt(args: list[str], cwd: Path, when: Callable[[int], bool]) -> tuple[bool, subprocess.CompletedProcess]:
    """Ctrl-C to the command as soon as ``when(pid)`` holds; whether it held before the command ended, and how
    the command ended."""
    proc = subprocess.Popen([*RUN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (seen := when(proc.pid)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)  # polls the process's state: the moment is an event, not a delay
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return seen, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/maps").exists(), reason="Linux's /proc/PID/maps and status")
def test_ctrl_c_at_any_time_is_one_line_naming_resume_and_exit_130(npz_file, tmp_path):
    # at several points of the imports (torch's C++ start-up aborted, and scipy's left a half-made module,
    # when a KeyboardInterrupt was raised inside them), then during training; each in its own directory (an
    # interrupt held back through the imports may land after the first checkpoint, and the same command
    # would then rightly ask for --resume). Each moment is an event seen in the process's state.
    moments = [("as soon as Ctrl-C is handled", lambda pid: _catches(pid, signal.SIGALRM)),  # CtrlC.install
               ("while torch's C++ library starts", lambda pid: _has_mapped(pid, "libtorch_cpu")),
               ("while scipy is imported", lambda pid: _has_mapped(pid, "/scipy/")),
               ("while training", lambda pid: (out / "checkpoints" / "last.ckpt").exists())]
    for k, (name, when) in enumerate(moments):
        out = tmp_path / f"run{k}"
        seen, done = _interrupt(_train(npz_file, out, epochs=10), tmp_path, when)
        assert seen, f"the command ended before the moment {name!r} came"
        assert done.returncode == 130, (name, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert "Traceback" not in done.stderr, name
        if not out.exists():
            assert last == "spinalnet: interrupted before anything was written; run the same command again", name
            continue
        prefix = "spinalnet: interrupted; continue with: spinalnet "
        assert last.startswith(prefix) and last.endswith(f"--output {out} --resume"), (name, last)
    # the printed command continues the run that was interrupted while training
    resumed = subprocess.run([*RUN, *shlex.split(last[len(prefix):])], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "result.json").read_text())["epochs"] == 10


def test_ctrl_c_inside_an_atomic_write_waits_until_the_file_is_in_place(tmp_path):
    """A KeyboardInterrupt inside torch.save's zip writer became its own RuntimeError and a traceback: an
    interrupt arriving during a checkpoint write is raised once the file is complete."""
    from spinalnet.interrupts import CtrlC
    from spinalnet.files import atomic_write

    target = tmp_path / "last.ckpt"
    old_int, old_alarm = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM)
    CtrlC.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            def write(handle):
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the write
                time.sleep(0.2)  # the handler runs here and defers the interrupt
                handle.write(b"complete")

            atomic_write(target, write)
            time.sleep(1)  # the deferred interrupt arrives within 50 ms
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, old_int), signal.signal(signal.SIGALRM, old_alarm)
        CtrlC.pending = False
    assert target.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_error_raised_while_handling_ctrl_c_is_still_an_interrupt(monkeypatch, capsys):
    """CI: Ctrl-C just as Lightning started its loop; Lightning's clean-up then raised RuntimeError ("Please call
    iter(combined_loader) first") during the KeyboardInterrupt, and the program ended with a traceback."""
    import spinalnet.commands.cli as cli

    def interrupted_then_broken(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("Please call `iter(combined_loader)` first.")

    monkeypatch.setattr(cli, "_run", interrupted_then_broken)
    assert cli.main(["train", "--epochs", "1"]) == 130
    assert capsys.readouterr().err == "spinalnet: interrupted before anything was written; run the same command again\n"
    monkeypatch.setattr(cli, "_run", lambda argv: (_ for _ in ()).throw(RuntimeError("a real bug")))
    with pytest.raises(RuntimeError, match="a real bug"):  # any other error is not hidden
        cli.main(["train"])


def test_an_interrupt_still_waiting_when_the_command_ends_is_dropped(capsys):
    """A Ctrl-C held back through the imports, then a command that ends on its own (here a usage error): the
    waiting interrupt's timer fired during shutdown and killed the process (exit -14 instead of 2)."""
    from spinalnet.interrupts import CtrlC

    old_alarm = signal.getsignal(signal.SIGALRM)
    signal.signal(signal.SIGALRM, CtrlC.on_signal)
    try:
        CtrlC.pending = True
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert main(["describe", "1", "10"]) == 2
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and CtrlC.pending is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        CtrlC.pending = False
    assert capsys.readouterr().err.startswith("spinalnet: error: ")


def test_ctrl_c_while_rundir_is_half_imported_waits_instead_of_crashing(monkeypatch):
    """CI caught Ctrl-C 0.2 s into start-up: spinalnet.rundir was in sys.modules without atomic_write yet,
    and the handler's AttributeError ended the program with a traceback. A half-made module is an import in
    progress, so the interrupt waits; a plain frame still gets it."""
    import types

    from spinalnet.interrupts import CtrlC

    monkeypatch.setitem(sys.modules, "spinalnet.rundir", types.ModuleType("spinalnet.rundir"))
    assert CtrlC.must_wait(sys._getframe()) is False
    frames = []
    exec(compile("frames.append(sys._getframe())", "<frozen importlib._bootstrap>", "exec"),
         {"frames": frames, "sys": sys})
    assert CtrlC.must_wait(frames[0]) is True


def test_a_run_stopped_before_its_first_checkpoint_is_started_over_by_the_same_command(npz_file, tmp_path):
    """Ctrl-C during start-up can leave a run directory with no checkpoint: --resume has nothing to
    continue, so the plain command starts it over instead of refusing both ways."""
    from spinalnet.rundir import open_run_dir

    out = tmp_path / "run"
    open_run_dir(out, "train", lambda: out).create()  # what an interrupted start leaves
    assert main([*_train(npz_file, out), "--resume"]) == 2
    assert main(_train(npz_file, out)) == 0
    assert (out / "result.json").is_file()
