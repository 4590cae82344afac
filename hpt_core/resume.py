"""Resumable training: the loop's state (weights, optimizer, schedule, RNG, data position, early stopping) saved to
a directory every N steps, and read back to continue a run that was stopped or killed.

    checkpoint = Checkpointing(every=200, save=lambda state: write_state(folder, state, {"settings": ...}))
    fit(module, batches, steps_per_epoch, evaluate, config, checkpoint=checkpoint)  # saves every 200 steps
    fit(..., checkpoint=Checkpointing(200, save, read_state(folder)))  # continues where the last save left off

A folder holds ``state.pt`` (tensors and plain data, read back with ``torch.load(weights_only=True)``, no pickled
code) and ``resume.json`` (the step, the settings it was saved with, what the caller adds); it is written atomically
(``atomic.atomic_directory``), so a kill during a save leaves the previous state. On the CPU in fp32 a resumed run
ends with the same weights as an uninterrupted one with the same seed.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpt_core.atomic import atomic_directory
from hpt_core.errors import CheckpointError

__all__ = [
    "Checkpointing",
    "STATE_FILE",
    "INFO_FILE",
    "resume_directory",
    "has_state",
    "write_state",
    "read_info",
    "read_state",
    "remove_state",
    "differences",
    "rng_states",
    "restore_rng_states",
    "stop_on_signals",
]

STATE_FILE = "state.pt"
INFO_FILE = "resume.json"


@dataclass
class Checkpointing:
    """What ``training.fit`` saves and resumes from: ``save(state)`` runs on the main process every ``every``
    optimizer steps (``None``: never on a schedule), when the run is cancelled, and once at its end (before the best
    state is restored); ``state``, one such dict, is the point to continue from (``None``: start afresh)."""

    every: int | None
    save: Callable[[dict[str, Any]], None]
    state: dict[str, Any] | None = None


def resume_directory(out: str | Path) -> Path:
    """Where the resume state of a run writing ``out`` lives: the sibling ``<out>.resume`` (never inside ``out``,
    which is only written, atomically, when the run has finished)."""
    out = Path(out)
    return out.with_name(out.name + ".resume")


def has_state(directory: str | Path) -> bool:
    """Whether ``directory`` holds a complete saved state."""
    directory = Path(directory)
    return (directory / STATE_FILE).is_file() and (directory / INFO_FILE).is_file()


def write_state(directory: str | Path, state: dict[str, Any], info: Mapping[str, Any]) -> Path:
    """Replace the state in ``directory`` with ``state`` (``torch.save``) and ``info`` (JSON) in one rename."""
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not has_state(target):
        raise CheckpointError(
            f"{target} exists and is not a resume state; move it away or choose another output, so that it is not "
            "replaced."
        )
    with atomic_directory(target, overwrite=True) as staging:
        torch.save(state, staging / STATE_FILE)
        (staging / INFO_FILE).write_text(json.dumps(dict(info), indent=2) + "\n", encoding="utf-8")
    return target


def read_info(directory: str | Path) -> dict[str, Any]:
    """``resume.json`` of a saved state."""
    path = Path(directory) / INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Cannot read the resume state {path}: {e}; delete {directory} to start over.") from e


def read_state(directory: str | Path) -> dict[str, Any]:
    """The saved loop state, on the CPU (``fit`` moves it to the training device)."""
    path = Path(directory) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: torch raises several types
        raise CheckpointError(f"Cannot read the resume state {path}: {e}; delete {directory} to start over.") from e


def remove_state(directory: str | Path) -> None:
    """Delete a saved state (the run it belongs to has finished); a folder that holds none is left alone."""
    if has_state(directory):
        shutil.rmtree(directory, ignore_errors=True)


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else repr(value)


def differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """``"name: saved X, requested Y"`` for every key whose value differs (or is missing on one side)."""
    missing = object()
    lines = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key, missing), requested.get(key, missing)
        if a != b:
            show = [("(none)" if v is missing else _shown(v)) for v in (a, b)]
            lines.append(f"{key}: saved {show[0]}, requested {show[1]}")
    return lines


def rng_states() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and CUDA) generator states, as plain data and tensors."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(key, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the generators back to ``rng_states()``'s output (CUDA only when the device count matches)."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextmanager
def stop_on_signals(cancel: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGTERM and the first Ctrl-C set ``cancel`` (the loop stops after its step and saves its
    state); a second Ctrl-C interrupts at once. The previous handlers come back on exit (main thread only; elsewhere
    this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    for s in previous:
        signal.signal(s, stop)
    try:
        yield cancel
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
