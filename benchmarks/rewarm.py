"""Re-warming the default backbone: the corpus it is trained on, and its masked top-1 on 20NG test messages.

    python -m benchmarks.rewarm corpus --out runs/rewarm-corpus.jsonl
    python -m hpt_core pretrain --data runs/rewarm-corpus.jsonl --out checkpoints/minilm-l6-mlm --fp16-weights ...
    python -m benchmarks.rewarm evaluate --backbone minilm-l6 --backbone minilm-l6-mlm

The corpus never contains a test document of the benchmarks: the 20 Newsgroups *training* split (raw messages,
headers included) plus the WOS-1k abstracts that are training documents under both seeded WOS splits the project
reports (``split_dataset(seed=0)`` with dev/test fractions 0.1/0.1 and 0.1/0.2). ``evaluate`` measures held-out
masked top-1 on 20NG *test* messages: raw text, length 128, 15 % of the text wordpieces replaced by ``[MASK]``.

``train`` continues re-warming the shipped backbone for more steps (a fresh optimizer, seed 1: a new order and new
masks), resumable. A long run in the background, which survives the end of a session: launch it, and after a stop
(the session ended, the process was killed) launch the very same line again; it continues from the state saved
every ``--save-every`` steps in ``OUT.resume/`` (``SIGTERM`` saves before stopping), and once finished it only
prints the summary:

    nohup python -m benchmarks.rewarm train --steps 4000 --out runs/minilm-l6-mlm-4k >> runs/rewarm-train.log 2>&1 &

It writes ``benchmarks/results/rewarm-train.json`` as it goes (``status`` running/stopped/finished, the steps done,
the held-out masked top-1 of every evaluation so far, then the final result and the 20NG test masked top-1), a file
small enough to commit at any point. The held-out texts within the corpus follow the seed, so with seed 1 some were
trained on by the shipped run (its figure is optimistic); the 20NG test figure is the clean one.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import NEWS_20NG, RESULTS, WORK, WOS_1K, WOS_TAXONOMY, data_file, write_json
from hpt_core.atomic import check_target
from hpt_core.backbones import REWARMED_BACKBONE, load_backbone
from hpt_core.data import load_dataset, read_texts, split_dataset
from hpt_core.pretrain import MaskedLMObjective, masked_accuracy, pretrain, pretrain_config, save_backbone
from hpt_core.resume import has_state, read_info, remove_state, resume_directory, stop_on_signals
from hpt_core.training import TrainProgress

WOS_SPLITS = ((0.1, 0.1), (0.1, 0.2))  # (dev, test) fractions of the reported WOS splits, seed 0
OUT = RESULTS / "rewarm.json"
TRAIN_SUMMARY = RESULTS / "rewarm-train.json"
CORPUS = WORK / "rewarm-corpus.jsonl"


def build_corpus(out: Path) -> dict[str, int]:
    """Write the re-warming corpus as JSONL (``{"text": ...}``); returns the counts per source."""
    news = load_dataset(data_file(NEWS_20NG))
    news_train = [d.text for d in news.documents if d.split == "train"]
    wos = load_dataset(data_file(WOS_1K), hierarchy_file=data_file(WOS_TAXONOMY))
    excluded: set[str] = set()
    for dev, test in WOS_SPLITS:
        _, dev_set, test_set = split_dataset(wos, dev, test, seed=0)
        excluded |= {d.text for d in test_set.documents} | {d.text for d in dev_set.documents}
    wos_train = [d.text for d in wos.documents if d.text not in excluded]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for text in news_train + wos_train:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    return {"20ng_train": len(news_train), "wos_train": len(wos_train), "total": len(news_train) + len(wos_train)}


def evaluate(backbones: list[str], n_messages: int = 500, seed: int = 0) -> dict[str, dict[str, float]]:
    """Masked top-1 of each backbone on ``n_messages`` seeded 20NG test messages (same masks for every backbone)."""
    news = load_dataset(data_file(NEWS_20NG))
    test = [d.text for d in news.documents if d.split == "test"]
    sample = random.Random(seed).sample(test, min(n_messages, len(test)))
    results = {}
    for name in backbones:
        tokenizer, backbone = load_backbone(name)
        started = time.perf_counter()
        objective = MaskedLMObjective(backbone, tokenizer, max_length=128, probability=0.15)
        top1 = masked_accuracy(objective, sample, batch_size=32, seed=seed)
        results[name] = {
            "masked_top1_20ng_test": top1,
            "messages": len(sample),
            "seconds": time.perf_counter() - started,
        }
        print(f"{name}: masked top-1 {100 * top1:.2f} % on {len(sample)} 20NG test messages", file=sys.stderr)
    return results


def _evaluation(step: int, epoch: int, top1: float) -> dict[str, Any]:
    return {"step": step, "epoch": epoch, "heldout_masked_top1": top1}


def continue_training(
    steps: int,
    out: Path,
    corpus: Path = CORPUS,
    backbone: str = REWARMED_BACKBONE,
    summary: Path = TRAIN_SUMMARY,
    save_every: int = 100,
    eval_every: int = 400,
    seed: int = 1,
    batch_size: int = 16,
    lr: float = 1e-4,
    max_length: int = 128,
    messages: int = 500,
    command: str = "",
    callback: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """``steps`` of masked-LM training of ``backbone`` on ``corpus`` (built when missing), resumable in
    ``resume_directory(out)``; the backbone (fp16) is saved to ``out`` at the end, then measured on ``messages`` 20NG
    test messages (0: not measured). ``summary`` is rewritten at every evaluation and every save; returned at the
    end. A finished ``out`` is not trained again."""
    out, summary, state_dir = Path(out), Path(summary), resume_directory(out)
    if (out / "pretrain.json").is_file():  # finished (maybe killed before the state was removed or the last measure)
        remove_state(state_dir)
        print(f"{out} is finished; see {summary}.", file=sys.stderr)
        record = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {"status": "finished"}
        return _measure(record, out, summary, messages)
    check_target(out)  # refused now rather than after the run
    if not Path(corpus).is_file():
        print(f"Building the corpus {corpus}: {build_corpus(Path(corpus))}", file=sys.stderr)
    texts = read_texts(corpus)
    config = pretrain_config(
        optimizer="adamw", max_steps=steps, eval_every=eval_every, seed=seed, batch_size=batch_size, lr=lr
    )
    record: dict[str, Any] = {
        "status": "running",
        "command": command,
        "backbone": backbone,
        "corpus": str(corpus),
        "texts": len(texts),
        "out": str(out),
        "settings": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "max_length": max_length},
        "steps_done": 0,
        "evaluations": [],
    }
    if has_state(state_dir):
        info = read_info(state_dir)
        record["steps_done"], record["resumed_from_step"] = info["step"], info["step"]
        record["last_loss"] = info["last_loss"]
        record["evaluations"] = [_evaluation(h["step"], h["epoch"], h["dev_score"]) for h in info["history"]]
        print(f"Resuming from step {info['step']} ({state_dir}).", file=sys.stderr)

    def progress(event: TrainProgress) -> None:
        if event.phase == "eval":
            record["evaluations"].append(_evaluation(event.step, event.epoch, event.dev_score))
        record["steps_done"], record["elapsed_seconds"] = event.step, round(event.elapsed_seconds, 1)
        if event.loss is not None:
            record["last_loss"] = event.loss
        if event.phase == "eval" or event.step % save_every == 0:
            write_json(summary, record)
        if callback is not None:
            callback(event)

    tokenizer, model = load_backbone(backbone)
    cancel = cancel if cancel is not None else threading.Event()
    with stop_on_signals(cancel):
        result = pretrain(
            model,
            tokenizer,
            texts,
            config,
            max_length,
            callback=progress,
            cancel=cancel,
            resume_dir=state_dir,
            save_every=save_every,
        )
    if result.cancelled:
        write_json(summary, record | {"status": "stopped", "steps_done": result.steps})
        print(f"Stopped at step {result.steps}; launch the same command again to continue.", file=sys.stderr)
        return record | {"status": "stopped"}
    provenance = {"command": command, "backbone": backbone, "data": str(corpus), **record["settings"]}
    save_backbone(model, tokenizer, out, result, provenance, fp16=True)
    remove_state(state_dir)
    final = {k: v for k, v in result.to_dict().items() if k != "history"}  # the evaluations are in the record
    record |= {"status": "finished", "steps_done": result.steps, "result": final}
    write_json(summary, record)
    return _measure(record, out, summary, messages)


def _measure(record: dict[str, Any], out: Path, summary: Path, messages: int) -> dict[str, Any]:
    """Add the finished backbone's masked top-1 on ``messages`` 20NG test messages to the summary (once)."""
    if messages and "masked_top1_20ng_test" not in record:
        record["masked_top1_20ng_test"] = evaluate([str(out)], messages)[str(out)]["masked_top1_20ng_test"]
        write_json(summary, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rewarm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("corpus", help="write the re-warming corpus (JSONL)")
    p.add_argument("--out", default="runs/rewarm-corpus.jsonl")
    p = sub.add_parser("evaluate", help="masked top-1 on 20NG test messages")
    p.add_argument("--backbone", action="append", required=True)
    p.add_argument("--messages", type=int, default=500)
    p = sub.add_parser("train", help="continue re-warming a backbone for more steps, resumable (see the docstring)")
    p.add_argument("--steps", type=int, required=True, help="steps of this run (from the backbone's weights)")
    p.add_argument("--out", type=Path, required=True, help="backbone directory to write (its state: OUT.resume/)")
    p.add_argument("--backbone", default=REWARMED_BACKBONE, help="backbone to continue (default: the shipped one)")
    p.add_argument("--corpus", type=Path, default=CORPUS, help="JSONL corpus (built when missing)")
    p.add_argument("--summary", type=Path, default=TRAIN_SUMMARY, help="partial and final summary (JSON)")
    p.add_argument("--save-every", type=int, default=100, help="steps between resumable states")
    p.add_argument("--eval-every", type=int, default=400, help="steps between held-out evaluations")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--messages", type=int, default=500, help="20NG test messages measured at the end (0: none)")
    args = parser.parse_args(argv)
    if args.command == "corpus":
        print(json.dumps(build_corpus(Path(args.out))))
        return 0
    if args.command == "train":
        command = "python -m benchmarks.rewarm " + shlex.join(sys.argv[1:] if argv is None else argv)
        settings = {k: getattr(args, k) for k in ("backbone", "corpus", "summary", "save_every", "eval_every", "seed")}
        record = continue_training(args.steps, args.out, messages=args.messages, command=command, **settings)
        print(json.dumps({k: v for k, v in record.items() if k not in ("evaluations", "result")}))
        return 130 if record["status"] == "stopped" else 0
    results = evaluate(args.backbone, args.messages)
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    write_json(OUT, previous | results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
