"""The shapes every speed measurement uses, and where its inputs and results live."""

from __future__ import annotations

from benchmarks.common import CHECKPOINTS, RESULTS

BATCH, LENGTH, PREDICT_BATCH, LR = 16, 128, 32, 1e-4
CHECKPOINT = CHECKPOINTS / "20ng-hpt"  # the shipped model whose prediction speed is measured
OUT = RESULTS / "speed.json"
