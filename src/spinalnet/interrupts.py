"""Ctrl-C as one KeyboardInterrupt that never lands where it would do harm; used by the command line and
by the ``--jobs`` worker processes alike (a leaf module: it imports nothing of the package)."""

from __future__ import annotations

import signal
import sys
from types import FrameType


class CtrlC:
    """Ctrl-C as KeyboardInterrupt, but never raised where it would do harm; there it waits, re-checked
    every 50 ms, until that code is done:

    - inside an import: torch's C++ start-up aborts the process (SIGABRT) and scipy under torchmetrics
      leaves a half-made module behind (RecursionError);
    - inside an atomic file write (:func:`spinalnet.files.atomic_write`, e.g. a checkpoint): torch.save's
      zip writer turns the interrupt into its own RuntimeError and a traceback.

    Installed ``once`` (in ``--jobs`` workers, which get each Ctrl-C from the terminal and again from the
    parent), only the first interrupt counts."""

    pending = False
    once = False

    @staticmethod
    def must_wait(frame: FrameType | None) -> bool:
        # rundir may be half-imported when the signal comes (its frames then are an import's, so we wait)
        write = getattr(getattr(sys.modules.get("spinalnet.files"), "atomic_write", None), "__code__", None)
        while frame is not None:
            code = frame.f_code
            if code is write or code.co_filename.startswith("<frozen importlib"):
                return True
            frame = frame.f_back
        return False

    @classmethod
    def on_signal(cls, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGALRM and not cls.pending:
            return
        if cls.must_wait(frame) and signal.getsignal(signal.SIGALRM) == cls.on_signal:
            cls.pending = True
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        cls.pending = False
        if cls.once:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    @classmethod
    def install(cls, once: bool = False) -> None:
        cls.once = once
        signal.signal(signal.SIGINT, cls.on_signal)
        signal.signal(signal.SIGALRM, cls.on_signal)

    @classmethod
    def settle(cls) -> None:
        """Drop an interrupt still waiting when the command ends on its own (e.g. with a usage error): its
        timer would otherwise fire during the interpreter's shutdown, which has restored SIGALRM's default
        action, and kill the process (exit -14 instead of the command's own code)."""
        if cls.pending:
            signal.setitimer(signal.ITIMER_REAL, 0)
            cls.pending = False
