"""The processes of a multi-process run (``accelerate launch``, ``torchrun``) as the training loop sees them.

    dist = current()  # from WORLD_SIZE / RANK / LOCAL_RANK; one process when they are unset
    model = dist.prepare(model)  # DistributedDataParallel under several processes, unchanged in one
    part, share = dist.shard(batch)  # this process's contiguous slice of the global batch

In a single process every method returns its input unchanged or does nothing, and accelerate is never imported.
With several processes, accelerate starts the process group (NCCL on GPUs, gloo on CPUs) and wraps the module in
DDP. Work that only one process should do (evaluation, saving) runs through ``on_main``: rank 0 runs it and
broadcasts the result, or the exception it raised. Every process then takes the same early-stopping decision, and
no process waits forever for one that failed.
"""

from __future__ import annotations

import atexit
import functools
import os
import pickle
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

import torch

from hpt_core.device import resolve_device
from hpt_core.errors import ConfigError

__all__ = ["Distributed", "MultiProcess", "current"]

T = TypeVar("T")


class Distributed:
    """One process. ``current()`` returns a ``MultiProcess`` instead when a launcher started several."""

    world_size: int = 1
    rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that evaluates, prints and saves (rank 0)."""
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """The device this process trains on (``requested``: auto, cpu, cuda or cuda:N)."""
        return resolve_device(requested)

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module to call in training steps (a DDP wrapper around ``module`` under several processes)."""
        return module

    def shard(self, batch: Any) -> tuple[Any, float]:
        """This process's rows of a global batch and their share of it (1.0 in one process)."""
        return batch, 1.0

    def batch_mean(self, values: list[float], share: float) -> list[float]:
        """Per-process batch means → means over the global batch (weighted by each process's ``share``)."""
        return values

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on at least one (e.g. a cancel request)."""
        return flag

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the main process only; every process returns its result or raises its exception."""
        return fn()


class MultiProcess(Distributed):
    """Several processes started by ``accelerate launch`` or ``torchrun``; accelerate is imported on first use."""

    def __init__(self, world_size: int, rank: int) -> None:
        self.world_size, self.rank = world_size, rank
        self._accelerator: Any = None

    def _start(self, cpu: bool) -> Any:
        if self._accelerator is None:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs

            # Some variants leave parameters out of the loss (parts of the MLM head under `finetune` and `no-mlm`),
            # hence find_unused_parameters. Precision stays with TrainConfig.precision (fit's autocast).
            ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
            self._accelerator = Accelerator(cpu=cpu, mixed_precision="no", kwargs_handlers=[ddp])
            # A process group left to interpreter shutdown can abort the process (SIGABRT from gloo's worker
            # threads) after the work is done, so close it while Python is still whole.
            atexit.register(_close_process_group)
        return self._accelerator

    @property
    def _comm_device(self) -> torch.device:
        return self._start(cpu=not torch.cuda.is_available()).device

    def device(self, requested: str) -> torch.device:
        """Each process's own GPU (``cuda:LOCAL_RANK``, NCCL), or the CPU (gloo) when there is no GPU or
        ``requested`` is ``"cpu"``."""
        if requested not in ("auto", "cpu", "cuda"):
            raise ConfigError(
                f"Device {requested!r} cannot be used with {self.world_size} processes: each process takes its own "
                "GPU (LOCAL_RANK). Use 'auto', 'cuda' or 'cpu', and choose GPUs with CUDA_VISIBLE_DEVICES."
            )
        if requested == "cuda" and not torch.cuda.is_available():
            raise ConfigError("Device 'cuda' requested but no CUDA GPU is available; use 'auto' or 'cpu'.")
        return self._start(cpu=requested == "cpu" or not torch.cuda.is_available()).device

    def prepare(self, module: torch.nn.Module) -> torch.nn.Module:
        return self._start(cpu=not torch.cuda.is_available()).prepare_model(module)

    def shard(self, batch: Any) -> tuple[Any, float]:
        """Rows ``[size·rank/world, size·(rank+1)/world)`` of ``batch`` (a dataclass of ``(B, ...)`` tensors).

        When the batch has fewer rows than there are processes (the last batch of an epoch), a process without rows
        takes the first row with share 0: it still joins DDP's gradient all-reduce, but adds nothing to it.
        """
        size = len(batch)
        start, stop = size * self.rank // self.world_size, size * (self.rank + 1) // self.world_size
        if start == stop:
            return _rows(batch, 0, 1), 0.0
        return _rows(batch, start, stop), (stop - start) / size

    def batch_mean(self, values: list[float], share: float) -> list[float]:
        import torch.distributed as dist

        total = torch.tensor([v * share for v in values], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.tolist()

    def any(self, flag: bool) -> bool:
        import torch.distributed as dist

        value = torch.tensor([int(flag)], device=self._comm_device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def on_main(self, fn: Callable[[], T]) -> T:
        import torch.distributed as dist

        outcome: list[Any] = [None]
        error: Exception | None = None
        if self.is_main:
            try:
                outcome = [(True, fn())]
            except Exception as e:  # raised on every process below, so none waits for the main one forever
                error = e
                outcome = [(False, e if _picklable(e) else RuntimeError(f"{type(e).__name__}: {e}"))]
        dist.broadcast_object_list(outcome, src=0, device=self._comm_device)
        if error is not None:
            raise error
        ok, value = outcome[0]
        if not ok:
            raise value
        return value


def _close_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # any pickling failure: the caller sends a plain RuntimeError instead
        return False
    return True


def _rows(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if not is_dataclass(batch):
        raise TypeError(f"cannot split a {type(batch).__name__} across processes; give a dataclass of tensors.")
    values = {f.name: getattr(batch, f.name) for f in fields(batch)}
    return replace(batch, **{k: v[start:stop] for k, v in values.items() if isinstance(v, torch.Tensor)})


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text.strip() else default
    except ValueError as e:
        raise ConfigError(f"Environment variable {name}={text!r} is not a whole number; unset it or fix it.") from e


@functools.cache
def current() -> Distributed:
    """This process's view of the run: ``MultiProcess`` when ``WORLD_SIZE`` > 1 (set by ``accelerate launch`` and
    ``torchrun``), else the single-process ``Distributed``."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return Distributed()
    rank = _env_int("RANK", 0)
    if not 0 <= rank < world_size:
        raise ConfigError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size}); check the launcher.")
    return MultiProcess(world_size, rank)
