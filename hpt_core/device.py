"""Where and in which precision a model runs: device resolution, autocast, bf16 detection.

Used by training (``training.fit``), inference (``inference.score_documents``), prediction and distributed runs;
it imports nothing else from ``hpt_core`` but the errors, so any module can use it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from hpt_core.errors import ConfigError

__all__ = ["resolve_device", "device_summary", "autocast", "resolve_precision", "native_bf16", "PRECISIONS"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # training autocast choices (TrainConfig.precision)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"Unknown device {name!r}; use 'auto', 'cpu' or 'cuda'.") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {name!r} requested but no CUDA GPU is available; use 'auto' or 'cpu'.")
    return device


def device_summary(name: str = "auto") -> str:
    """Where training would run, in words: ``"GPU (NVIDIA H100)"`` or ``"CPU (2 threads)"``."""
    device = resolve_device(name)
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed-precision context for ``precision`` (one of ``PRECISIONS``) on ``device``.

    On GPUs ``auto`` means bf16 where supported, else fp16. On the CPU ``auto`` and ``fp32`` are a no-op (scores
    identical on every machine; CPU bf16 inference is the ``Predictor``'s choice, see ``native_bf16``), ``bf16``
    autocasts to bf16 (fast on CPUs with bf16 instructions, slower than fp32 elsewhere) and ``fp16`` is refused with a
    ``ConfigError``: CPU float16 kernels are slower than fp32 and, without a gradient scaler, fp16 training
    underflows, so a run that asked for it would silently get neither speed nor the precision it named."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type != "cuda":
        if precision == "bf16" and device.type == "cpu":
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        if precision == "fp16" and device.type == "cpu":
            raise ConfigError(
                "precision fp16 is for GPUs; on the CPU use bf16 (fast on CPUs with bf16 instructions) or fp32."
            )
        return contextlib.nullcontext()
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def resolve_precision(device: torch.device, precision: str) -> str:
    """What ``precision`` means on ``device`` for training steps, dev scoring and the sentence baseline (the
    ``Predictor`` resolves its own ``auto`` the same way on the CPU): ``auto`` becomes ``bf16`` on CPUs with bf16
    instructions (a training step 1.5× faster and prediction 2× on the 2-core AMD EPYC measured, no dev-F1 cost;
    docs/benchmarks.md) and ``fp32`` on other CPUs, where emulated bf16 is slower than fp32; on GPUs it stays
    ``auto`` (``autocast`` picks bf16 or fp16). Other values are returned unchanged."""
    if precision == "auto" and device.type == "cpu":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def native_bf16(device: torch.device) -> bool:
    """True on CPUs with bf16 instructions (AVX512-bf16 or AMX), where bf16 autocast is fast; False elsewhere,
    where it would be slower than fp32 (and on GPUs, which ``score_documents`` already autocasts)."""
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
