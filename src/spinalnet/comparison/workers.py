"""Independent training runs in worker processes (``compare --jobs N``), on the standard library's
``concurrent.futures.ProcessPoolExecutor``.

Small models leave cores idle in one process: Lightning's per-step work is single-threaded, so two
runs side by side, one thread each, finish sooner than the same runs one after another with two
threads each (``benchmarks/compare_jobs.py``). Each worker gets an even share of the CPU threads and,
when runs go to GPUs, its own GPU. Workers are spawned, not forked (a forked copy of a process that
has used OpenMP threads can hang), and receive the data once, through shared memory.

Ctrl-C stops every worker the way it stops one run (Lightning's graceful stop, then exit 130): each
finished run keeps its result, each unfinished one its last checkpoint, so ``--resume`` continues.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable

from spinalnet.errors import OptionError, Resumable, StoppedEarly, TrainingError, UsageError
from spinalnet.interrupts import CtrlC
from spinalnet.engine.machine import cpu_cores, mps_available


def check_jobs(jobs: int, accelerator: str, devices: str | int, num_nodes: int, gpus: int) -> int:
    """``--jobs`` if this machine can run that many workers; refuse what cannot share it."""
    if jobs == 1:
        return 1
    if str(devices) not in ("auto", "1") or num_nodes > 1:
        raise UsageError(f"--jobs {jobs} trains several runs at once, each on one device; --devices and --num-nodes "
                         "spread one run over several devices: use one or the other")
    on_gpu = gpus > 0  # the caller counts GPUs only for an accelerator that may use them
    if on_gpu and jobs > gpus:
        raise UsageError(f"--jobs {jobs}: this machine has {gpus} GPU(s), and each worker needs its own; "
                         f"use at most --jobs {gpus}")
    if not on_gpu and (accelerator == "mps" or accelerator == "auto" and mps_available()):
        raise UsageError("--jobs needs CPUs or CUDA GPUs; Apple's MPS is one device shared by every process "
                         "(with --jobs, pass --accelerator cpu)")
    cores = cpu_cores()
    if not on_gpu and jobs > cores:
        raise UsageError(f"--jobs {jobs}: this machine has {cores} CPU core(s), and each worker needs one; "
                         f"use at most --jobs {cores}")
    return jobs


class _Prefixed(io.TextIOBase):
    """A worker's output, each line prefixed with its run's name: the workers share one terminal."""

    def __init__(self, stream: Any, prefix: str) -> None:
        self.stream, self.prefix, self.at_line_start = stream, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            self.stream.write((self.prefix if self.at_line_start else "") + piece)
            self.at_line_start = piece.endswith("\n")
        self.stream.flush()
        return len(text)


class _Worker:
    """The state of one worker process: the shared data, whether a run is in progress, and the parent's
    stop signal (set before it passes Ctrl-C on, or when a run failed)."""

    splits: Any = None
    running = False
    stop: Any = None


def _on_interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C stops the run in progress as it stops one run; an idle worker starts no further run."""
    if _Worker.running:
        CtrlC.on_signal(signum, frame)


def _start_worker(splits: Any, threads: int, gpu_slots: Any, stop: Any) -> None:
    # CtrlC's SIGALRM handler raises interrupts deferred out of imports and atomic writes; SIGINT itself goes
    # through _on_interrupt, which passes it to CtrlC only while a run is in progress. ``once``: the terminal's
    # Ctrl-C reaches the workers too, and the parent's copy of it is ignored.
    CtrlC.install(once=True)
    signal.signal(signal.SIGINT, _on_interrupt)
    import torch

    torch.set_num_threads(threads)
    if gpu_slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_slots.get())
    _Worker.splits, _Worker.stop = splits, stop


def _train_in_worker(config: Any, label: str, test: bool) -> Any:
    from spinalnet.engine.train import fit

    name = f"[{label}] "
    stdout, sys.stdout = sys.stdout, _Prefixed(sys.stdout, name)
    _Worker.running = True
    try:
        if _Worker.stop.is_set():  # queued before the comparison was stopped: do not start it
            raise KeyboardInterrupt
        result = fit(config, _Worker.splits, test=test, announce=False)
        print(result.describe())
        return result
    except OptionError as err:  # its own one-line error, naming the run
        raise UsageError(f"{name}{err.for_command_line()}") from None
    except Resumable as err:  # the same error, naming the run, with the directory its resume hint names
        raise type(err)(f"{name}{err}", err.directory) from None
    except (UsageError, TrainingError) as err:
        raise (TrainingError if isinstance(err, TrainingError) else UsageError)(f"{name}{err}") from None
    finally:
        _Worker.running = False
        sys.stdout = stdout


def _interrupt_workers(stop: Any) -> None:
    """Stop every worker: no queued run starts, and Ctrl-C is passed on to the running ones (a signal sent
    to this process alone does not reach them)."""
    stop.set()
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signal.SIGINT)
        except (ProcessLookupError, TypeError):
            pass


def train_in_workers(configs: list[Any], splits: Any, workers: int, gpus: int, log: Callable[[str], None],
                     test: bool, names: list[str], on_done: Callable[[Any], None]) -> list[Any]:
    """Train checked ``configs`` (named ``names`` in their output lines) in ``workers`` processes; ``on_done``
    sees each result as it comes; results in the order of ``configs``.

    The first failed run stops the others (each keeps its last checkpoint) and raises its error.
    """
    import torch.multiprocessing as tmp  # registers the reductions that pass tensors through shared memory

    context = tmp.get_context("spawn")
    threads = max(1, cpu_cores() // workers)
    slots = _gpu_slots(context, workers, gpus)
    log(f"training {len(configs)} runs in {workers} worker processes "
        f"({'one GPU each' if gpus else f'{threads} CPU thread(s) each'})")
    stop = context.Event()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(splits, threads, slots, stop))
    futures = _submit(pool, configs, names, test)
    try:
        _collect(futures, Path(configs[0].output).parent.parent, on_done)
        pool.shutdown(wait=True)
        return [f.result() for f in futures]
    except BaseException:
        try:
            _stop_workers(pool, stop)
        finally:
            # Release the pool's semaphores now: after Ctrl-C the CLI leaves with os._exit, which runs no
            # finalizer, and multiprocessing's resource tracker would warn about them.
            del pool, futures, stop, slots
            gc.collect()
        raise


def _gpu_slots(context: Any, workers: int, gpus: int) -> Any:
    """A queue of the GPU ids workers take one each (CUDA_VISIBLE_DEVICES may name a subset, or UUIDs); None
    without GPUs."""
    if not gpus:
        return None
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    ids = visible[:gpus] if visible else [str(i) for i in range(gpus)]
    slots = context.Queue()
    for index in range(workers):
        slots.put(ids[index % len(ids)])
    return slots


def _submit(pool: ProcessPoolExecutor, configs: list[Any], names: list[str], test: bool) -> list[Future]:
    """Every run, queued. Workers start with SIGINT ignored, so a Ctrl-C while they import torch cannot abort them
    half-made; each installs the CLI's handler once its imports are done. Every worker is started by these submits."""
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return [pool.submit(_train_in_worker, c, n, test) for c, n in zip(configs, names)]
    finally:
        signal.signal(signal.SIGINT, handler)


def _collect(futures: list[Future], directory: Path, on_done: Callable[[Any], None]) -> None:
    """Wait for every run; the first failure is raised (a killed worker as :class:`StoppedEarly` on the
    comparison's ``directory``, which ``--resume`` continues)."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if isinstance(error, BrokenProcessPool):  # a worker was killed (e.g. out of memory)
                raise StoppedEarly("a worker process died before its run ended (killed, or out of memory?); "
                                   "finished runs are kept", directory) from None
            if error is not None:
                raise error
            on_done(future.result())


def _stop_workers(pool: ProcessPoolExecutor, stop: Any) -> None:
    """After a failure or Ctrl-C: no queued run starts, running ones stop; a second Ctrl-C kills them."""
    _interrupt_workers(stop)
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except BaseException:  # a second Ctrl-C: stop waiting for the workers' graceful stop
        for child in multiprocessing.active_children():
            child.kill()
        raise
