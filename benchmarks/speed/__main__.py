"""Speed, memory and scaling of HPT against its own backbone, measured side by side in one run.

    python -m benchmarks.speed            # full run (~20 min on 2 idle cores) → benchmarks/results/speed.json
    python -m benchmarks.speed --quick    # every code path with few repeats and small sweeps (CI, ~1 min)
    python -m benchmarks.speed --report   # redraw the figures and the generated tables from speed.json
    python -m benchmarks.speed --only-app # re-measure the app and file sections only (~10 min), the rest kept
    python -m benchmarks.speed --only-steps # re-measure the training-step options only (~3 min), the rest kept

Absolute times on a shared machine are noisy; the ratios are measured on the same batches, interleaved (A, B, A, B,
...) after warm-up, and reported as ratios of medians. Figures go to ``docs/figures/speed-*.png``; the generated
tables go between the ``<!-- speed-...:begin -->`` and ``<!-- speed-...:end -->`` markers in ``docs/benchmarks.md``
and ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_json
from benchmarks.speed.app_latency import app_latency
from benchmarks.speed.costs import model_costs, profile_step, step_options
from benchmarks.speed.files import file_classification
from benchmarks.speed.memory import peak_memory, probe
from benchmarks.speed.report import goals_met, report
from benchmarks.speed.scaling import scaling
from benchmarks.speed.settings import OUT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats and small sweeps (CI)")
    parser.add_argument("--report", action="store_true", help="only redraw figures and tables from --out")
    parser.add_argument("--skip-app", action="store_true", help="leave out the app latency section")
    parser.add_argument(
        "--only-app",
        action="store_true",
        help="re-measure only the app latency and file sections and merge them into --out",
    )
    parser.add_argument(
        "--only-steps",
        action="store_true",
        help="re-measure only the training-step options (attention dropout off, bf16) and merge them into --out",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--probe", choices=("import", "train", "predict"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.probe:
        probe(args.probe)
        return 0
    if args.report:
        report(json.loads(args.out.read_text(encoding="utf-8")))
        return 0
    if args.only_app or args.only_steps:
        flag = "--only-app" if args.only_app else "--only-steps"
        if not args.out.is_file():
            parser.error(f"{flag} merges into an existing {args.out}; run the full benchmark first")
        result = json.loads(args.out.read_text(encoding="utf-8"))
        if args.only_app:
            result |= app_latency(quick=False) | file_classification(quick=False)
            result["app_date"] = time.strftime("%Y-%m-%d")
        if args.only_steps:
            options = step_options(quick=False)
            result |= {k: v for k, v in options.items() if k != "threads"} | {"steps_date": time.strftime("%Y-%m-%d")}
            result["steps_threads"] = options["threads"]
        result["goals_met"] = goals_met(result)
        write_json(args.out, result)
        report(result)
        print(json.dumps(result["goals_met"], indent=2))
        return 0
    started = time.perf_counter()
    result: dict[str, Any] = {"mode": "quick" if args.quick else "full", "date": time.strftime("%Y-%m-%d")}
    result |= model_costs(args.quick)
    result |= peak_memory()
    if not args.skip_app:
        result |= app_latency(args.quick)
    result |= file_classification(args.quick)
    result["scaling"] = scaling(args.quick)
    if not args.quick:
        profile_step(args.out.parent / "speed-profile.txt")
    result["goals_met"] = goals_met(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    write_json(args.out, result)
    if not args.quick:  # a quick run never overwrites the committed figures and tables
        report(result)
    print(json.dumps(result["goals_met"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
