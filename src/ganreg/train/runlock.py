"""One training process per run directory.

A cluster job requeued while its first attempt still runs, or a ``--resume`` typed in a second terminal,
would otherwise train the same run twice at once: both append to ``metrics.jsonl``, and each overwrites
and rotates away the other's checkpoints, silently. ``ganreg run`` therefore holds an advisory lock on
``RUN/.ganreg-run.lock`` while it trains. The operating system releases it when the process ends in any
way (SIGKILL and out-of-memory kills included), so a killed run never leaves a stale lock behind, and
Linux NFS clients lock across hosts. Under the lock, the temporary files a killed run left behind (a
half-written checkpoint under a ``.tmp`` name, hundreds of MB at 256 px) can be removed safely.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ganreg.errors import UserError
from ganreg.runfiles import checkpoint_dir

LOCK_FILE = ".ganreg-run.lock"
"""Inside the run directory; a dot file, so it counts as none of the user's files (``new_run_dir``)."""


class RunInUse(UserError):
    """Another process trains this run directory now."""


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[str | None]:
    """Hold the run's lock while the ``with`` body trains. Raise :class:`RunInUse`, naming the holder, when
    another process has it. Yield None, or why the run could not be locked on a filesystem without locks
    (some network filesystems), which the user should hear. Windows has no ``flock``: there the run trains
    unguarded, as it did before this lock."""
    try:
        import fcntl
    except ImportError:
        yield None
        return
    path = Path(run_dir) / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as fh:
        unlockable: OSError | None = None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "a process that has not said which"
            raise RunInUse(
                f"{run_dir} is being trained by another ganreg process now ({holder}); two processes on one run "
                "would interleave its log and overwrite each other's checkpoints",
                "wait for that process to end (or stop it), then resume; or start a new run with another --out",
            ) from None
        except OSError as err:  # ENOLCK and the like: train unguarded, as before
            unlockable = err
        if unlockable is not None:  # yielded outside the except: training's own errors are not chained to it
            yield (f"{run_dir} could not be locked ({unlockable.strerror or unlockable}), so a second process "
                   "training it at once would not be stopped")
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield None


def remove_leftover_temporaries(run_dir: Path) -> int:
    """Delete the temporary files (``.NAME.*.tmp``, see :mod:`ganreg.atomic`) that a killed run left in its
    checkpoint and sample folders, which only the training process writes; return the bytes freed. Call
    only while holding :func:`training_lock`: another trainer's files in flight look the same."""
    freed = 0
    for folder in (checkpoint_dir(run_dir), Path(run_dir) / "samples"):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                size = tmp.stat().st_size
                tmp.unlink()
                freed += size
    return freed
