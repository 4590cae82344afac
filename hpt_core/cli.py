"""Command line: ``hpt-studio validate|train|pretrain|evaluate|predict|explain|app`` (the console script ``pip
install .`` puts on the PATH; ``python -m hpt_core`` is the same in a checkout).

Results go to stdout as JSON (one object, or JSON lines for ``predict``); progress and messages go to stderr. Every
user error is one sentence on stderr and exit status 2, never a traceback. The flags that set a ``TrainConfig`` or
``HPTConfig`` field are generated from its declaration (``hpt_core.configs``).

Each command imports the library modules it uses inside its function, to keep start-up light: a command pays only
for its own imports (``explain`` loads UMAP, ``train`` transformers, ``validate`` neither).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from hpt_core.configs import AT_LEAST_ONE, SEED, Check, add_config_arguments, arg_type, config_from_args, config_values
from hpt_core.errors import CheckpointError, HPTError

__all__ = ["main", "build_parser"]

MAX_PROBLEMS_SHOWN = 20
EXIT_USER_ERROR = 2
LOG_FILE_HELP = "write every progress event (step, loss, dev scores) to this file as JSON lines"
STRIP_HELP = "remove e-mail headers, quoted replies and signatures from every text (newsgroup messages)"


class UserError(HPTError):
    """A problem with the command line itself (conflicting options, existing output directory...)."""


# Types of the flags that are not config fields (those get theirs from the field, ``add_config_arguments``).
_positive_int = arg_type(int, AT_LEAST_ONE)
_seed = arg_type(int, SEED)
_fraction = arg_type(float, Check(lambda v: 0 < v <= 1, "in (0, 1]", "a fraction in (0, 1], e.g. 0.1 for 10 %"))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _note(message: str) -> None:
    sys.stderr.write(message + "\n")


def _is_main() -> bool:
    """False on the other processes of an ``accelerate launch`` run: only the main one prints and saves."""
    from hpt_core.distributed import current

    return current().is_main


def _info(message: str) -> None:
    """A progress or summary note, printed by the main process only."""
    if _is_main():
        _note(message)


def _processes_note(batch_size: int) -> None:
    """Say how a multi-process run splits the global batch (nothing in a single process)."""
    from hpt_core.distributed import current

    n = current().world_size
    if n > 1:
        _info(f"Processes: {n} (DDP); the batch of {batch_size} is split across them, ~{batch_size / n:g} each.")


def _precision_note(device: str, precision: str) -> None:
    """Say when ``--precision auto`` trains in bf16 on this CPU (the numbers then differ from an fp32 CPU's)."""
    from hpt_core.device import resolve_device, resolve_precision

    try:
        target = resolve_device(device)
    except HPTError:
        return  # the run itself reports a bad --device
    if precision == "auto" and resolve_precision(target, precision) == "bf16":  # only a CPU resolves auto to bf16
        _info("Precision: bf16 (this CPU has bf16 instructions, so training runs faster); --precision fp32 for fp32.")


def _progress_log(path: str | None, append: bool = False) -> Callable[[Any], None]:
    """``--log-file``: every progress event as one JSON line (started empty, or continued when ``append``); a no-op
    without a path."""
    if path is None:
        return lambda event: None
    if Path(path).is_dir():
        raise UserError(f"--log-file {path} is a directory; give a file path such as runs/train-events.jsonl.")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if append else "w", encoding="utf-8"):
            pass
    except OSError as e:
        raise UserError(f"Cannot write --log-file {path}: {e.strerror or e}; choose a writable file path.") from e

    def write(event: Any) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dataclasses.asdict(event)) + "\n")

    return write


# ---------------------------------------------------------------------------------------------------- commands
def cmd_validate(args: argparse.Namespace) -> int:
    from hpt_core.data import validate

    report = validate(args.data, hierarchy_file=args.hierarchy)
    if report.ok():
        _print_json(report.to_dict())
        return 0
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        _note(problem)
    extra = len(report.problems) - MAX_PROBLEMS_SHOWN
    if extra > 0:
        _note(f"... and {extra} more problem(s).")
    _note(f"{args.data}: {len(report.problems)} problem(s) found; fix them and run validate again.")
    return EXIT_USER_ERROR


def _strip(args: argparse.Namespace, dataset: Any) -> Any:
    """Remove e-mail headers, quoted replies and signatures when ``--strip-newsgroup-headers`` is given."""
    from hpt_core.data import strip_newsgroup_texts

    return strip_newsgroup_texts(dataset) if getattr(args, "strip_newsgroup_headers", False) else dataset


def _load_splits(args: argparse.Namespace) -> Any:
    """Train/dev/test sets on one hierarchy (``hpt_core.finetune.Splits``)."""
    from hpt_core.finetune import prepare_splits

    return prepare_splits(
        args.data,
        hierarchy_file=args.hierarchy,
        dev=args.dev,
        test=args.test,
        split_seed=args.split_seed,
        strip_newsgroup_headers=getattr(args, "strip_newsgroup_headers", False),
    )


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hpt_core.finetune import finetune
    from hpt_core.model import HPTConfig
    from hpt_core.training import CODE_FAITHFUL_TRAINING, RECIPES, TrainConfig

    out = _output_directory(args)
    model_values = config_values(HPTConfig, args)
    model_config = HPTConfig.for_variant(args.variant, args.ablation, args.code_faithful, **model_values)
    preset = dict(RECIPES[args.recipe]) if args.recipe else {}  # a recipe, then --code-faithful, then the flags
    preset |= CODE_FAITHFUL_TRAINING if args.code_faithful else {}
    train_config = config_from_args(TrainConfig, args, preset)
    splits = _load_splits(args)
    _info(f"Data: {splits.summary()}")
    _info(f"Model: {model_config.variant_name} on {model_config.backbone}.")
    _processes_note(train_config.batch_size)
    _precision_note(train_config.device, train_config.precision)
    bars: list[Any] = []  # created at the first step, so set-up errors print alone
    log = _progress_log(args.log_file if _is_main() else None)

    def progress(event: Any) -> None:  # called on the main process only
        log(event)
        if not bars:
            bars.append(tqdm(total=event.total_steps, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True))
        bar = bars[0]
        if bar.total != event.total_steps:
            bar.total = event.total_steps
        if event.phase == "train":
            bar.update(1)
            bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}", refresh=False)
        else:
            bar.write(f"step {event.step} (epoch {event.epoch}): {event.message}", file=sys.stderr)

    provenance = {
        "data": str(args.data),
        "dev": args.dev,
        "test": args.test,
        "hierarchy": args.hierarchy,
        "split_seed": args.split_seed,
        "low_resource": args.low_resource,
        "recipe": args.recipe,
        "strip_newsgroup_headers": args.strip_newsgroup_headers,
        "label_names": args.label_names,
        "command": "python -m hpt_core " + " ".join(shlex.quote(str(a)) for a in args.argv),
    }
    result = finetune(
        splits,
        model_config,
        train_config,
        out,
        provenance=provenance,
        callback=progress,
        weights=args.weights,
        overwrite=args.overwrite,
        low_resource_fraction=args.low_resource,
        label_names=args.label_names,
    )
    for bar in bars:
        bar.close()
    if _is_main():
        _note(
            f"Saved the best checkpoint (step {result.run.best_step}) to {out}; per-label figures are in metrics.json."
        )
        _print_json({k: _without_per_label(v) for k, v in result.metrics.items()})
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    import threading

    from tqdm import tqdm

    from hpt_core.backbones import load_backbone
    from hpt_core.data import read_texts
    from hpt_core.distributed import current
    from hpt_core.pretrain import PRETRAIN_DEFAULTS, ResumeConfig, pretrain, save_backbone
    from hpt_core.resume import has_state, remove_state, resume_directory, stop_on_signals
    from hpt_core.training import TrainConfig

    state_dir = resume_directory(args.out)
    resuming = args.resume and has_state(state_dir)
    _check_resume_state(args, state_dir)
    out = _output_directory(args)
    # PRETRAIN_DEFAULTS (the flags' defaults; the schedule, which has no flag here, as a preset), then the flags
    fixed = {k: PRETRAIN_DEFAULTS[k] for k in ("schedule", "warmup_ratio")}
    config = config_from_args(TrainConfig, args, {"optimizer": "adamw"} | fixed)
    resume = config_from_args(ResumeConfig, args)
    saving = args.resume or resume.save_every is not None  # the run keeps a resume state in state_dir
    texts: list[str] = []
    for file in args.data:
        texts += read_texts(file)
    if not texts:
        raise UserError(f"No texts found in {', '.join(args.data)}; give files with at least one non-empty text.")
    tokenizer, backbone = load_backbone(args.backbone)
    _info(f"Re-warming {args.backbone} on {len(texts)} texts (length {args.max_length}, batch {config.batch_size}).")
    _processes_note(config.batch_size)
    if resuming:
        _info(f"Resuming from the state saved in {state_dir}.")
    elif args.resume:
        _info(f"No resume state in {state_dir}; starting from step 0.")
    bar = tqdm(total=None, desc="pretrain", unit="step", file=sys.stderr, dynamic_ncols=True, disable=not _is_main())
    log = _progress_log(args.log_file if _is_main() else None, append=resuming)

    def progress(event: Any) -> None:  # called on the main process only
        log(event)
        bar.total = event.total_steps
        if event.phase == "train":
            bar.update(event.step - bar.n)  # a resumed run starts at its saved step
            bar.set_postfix(loss=f"{event.loss:.3f}", refresh=False)
        else:
            bar.write(f"step {event.step}: {event.message}", file=sys.stderr)

    cancel = threading.Event()
    try:
        with stop_on_signals(cancel) if saving else nullcontext(cancel):  # SIGTERM/Ctrl-C: save the state, stop
            result = pretrain(
                backbone,
                tokenizer,
                texts,
                config,
                max_length=args.max_length,
                whole_word=args.whole_word,
                callback=progress,
                cancel=cancel,
                resume_dir=state_dir if saving else None,
                save_every=resume.save_every,
            )
    except KeyboardInterrupt:  # a second Ctrl-C: no time to save, but the last periodic state is still there
        if not (saving and has_state(state_dir)):
            raise
        _info(f"interrupted; {state_dir} holds the last saved state: rerun the same command with --resume.")
        return 130
    bar.close()
    if result.cancelled:
        _info(
            f"Stopped at step {result.steps}; the training state is saved in {state_dir}: rerun the same command "
            "with --resume to continue."
        )
        return 130
    provenance = {
        "command": "python -m hpt_core pretrain " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "backbone": args.backbone,
        "data": ", ".join(args.data),
        "max_length": args.max_length,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
        "whole_word": args.whole_word,
    }
    current().on_main(
        lambda: save_backbone(
            backbone, tokenizer, out, result, provenance, fp16=args.fp16_weights, overwrite=args.overwrite
        )
    )
    if _is_main():
        if saving and not resume.keep_resume_state:
            remove_state(state_dir)  # only now: a kill before the save above still finds the state
        summary = {k: v for k, v in result.to_dict().items() if k != "history"} | {"out": str(out)}
        _note(f"Saved the re-warmed backbone to {out}; use it with --backbone {out}.")
        _print_json(summary)
    return 0


def _check_resume_state(args: argparse.Namespace, state_dir: Path) -> None:
    """Refuse to start over a resume state without ``--resume``, and to resume into a finished output."""
    from hpt_core.resume import has_state, read_info

    out = Path(args.out)
    finished = (out / "pretrain.json").is_file()
    if has_state(state_dir) and not args.resume:
        info = read_info(state_dir)
        whose = f"kept from the finished run in {out}" if finished else "of an unfinished run"
        raise UserError(
            f"{state_dir} holds the training state {whose} (step {info.get('step')} of {info.get('total')}); pass "
            "--resume to continue it, or delete that folder to start over."
        )
    if args.resume and not args.overwrite and out.is_dir() and any(out.iterdir()):
        what = "a finished backbone" if finished else "files"
        raise UserError(
            f"{out} already holds {what}; --resume only continues an unfinished run: choose a new --out, or pass "
            "--overwrite to train again and replace it."
        )


def _output_directory(args: argparse.Namespace) -> Path:
    """``--out``, refused before any work when it is non-empty and ``--overwrite`` is not given."""
    from hpt_core.atomic import check_target

    out = Path(args.out)
    try:
        check_target(out, args.overwrite)
    except CheckpointError as e:  # same rule as at save time, worded for the command line
        raise UserError(
            f"Output directory {out} is not empty; choose a new --out or pass --overwrite to replace it."
        ) from e
    return out


def _without_per_label(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("per_label", "label_counts")}


def _load_model(directory: str) -> Any:
    from hpt_core.device import resolve_device
    from hpt_core.model import HPTModel

    return HPTModel.from_pretrained(directory, device=resolve_device("auto"))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hpt_core.data import load_dataset
    from hpt_core.hierarchy import LabelHierarchy
    from hpt_core.inference import evaluate_model

    model = _load_model(args.model)
    if args.hierarchy:
        given = LabelHierarchy.from_taxonomy(args.hierarchy)
        if given.to_dict() != model.hierarchy.to_dict():
            raise UserError(
                f"{args.hierarchy} differs from the model's label hierarchy ({model.hierarchy.num_labels} labels); "
                "evaluate with the hierarchy the model was trained on, or leave --hierarchy out."
            )
    dataset = _strip(args, load_dataset(args.data, hierarchy=model.hierarchy))
    if args.split:
        dataset = dataset.subset([d for d in dataset.documents if d.split == args.split])
        if not len(dataset):
            raise UserError(f"{args.data} has no documents with split {args.split!r}; leave --split out or fix it.")
    report = evaluate_model(model, dataset, args.batch_size)
    _note(report.summary())
    _print_json(report.to_dict())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hpt_core.atomic import check_file_target
    from hpt_core.batch_predict import (
        TextRecord,
        check_file,
        classify_file,
        iter_records,
        output_format,
        predict_rows,
        write_predictions,
    )
    from hpt_core.errors import ConfigError
    from hpt_core.predict import Predictor

    if args.text is not None and not args.text.strip():
        raise UserError("--text is empty; give some text to classify.")
    if args.out is None and (args.format or args.overwrite):
        raise UserError(
            f"{'--format' if args.format else '--overwrite'} needs --out; without it JSON lines go to stdout."
        )
    if args.out is not None:
        try:
            output_format(args.out, args.format)
            check_file_target(args.out, args.overwrite)
        except ConfigError as e:
            raise UserError(str(e).replace("overwrite=True (--overwrite)", "--overwrite")) from None
    total = 1
    if args.file is not None:  # every problem of the file, before the model loads; nothing is written
        check = check_file(args.file)
        check.raise_if_problems()
        total = check.n_texts
    predictor = Predictor(_load_model(args.model), batch_size=args.batch_size)
    options = {"threshold": args.threshold, "rule": args.rule, "best": args.best_path}
    bar = tqdm(
        total=total, desc="predict", unit="text", file=sys.stderr, dynamic_ncols=True, disable=args.text is not None
    )
    with bar:
        if args.out is not None and args.file is not None:
            result = classify_file(
                predictor,
                args.file,
                args.out,
                args.format,
                overwrite=args.overwrite,
                progress=lambda done, _: bar.update(done - bar.n),
                **options,
            )
            n, out = result.n_texts, result.outputs[0]
        elif args.out is not None:
            rows = predict_rows(predictor, [TextRecord(1, args.text, 1)], **options)
            n, out = write_predictions(rows, args.out, args.format, args.overwrite), Path(args.out)
        else:
            records = iter_records(args.file) if args.file is not None else [TextRecord(1, args.text, 1)]
            for row in predict_rows(predictor, records, **options):
                prediction = row.prediction.to_dict()
                names = {} if row.display_names is None else {"display_names": row.display_names}
                _print_json(
                    {"id": row.id, "text_preview": row.text_preview}
                    | prediction
                    | {"probabilities": row.probabilities}
                    | names
                )
                bar.update(1)
            return 0
    fmt = output_format(out, args.format)
    _note(f"Wrote {n} prediction(s) to {out} ({fmt}).")
    _print_json({"out": str(out), "format": fmt, "rows": n})
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from hpt_core.explain import label_movement, label_word_map

    model = _load_model(args.model)
    movement = label_movement(model, args.top_k, whole_words=not args.all_pieces)
    result: dict[str, Any] = {
        "labels": [m.after.to_dict() | m.to_dict() for m in movement.labels],
        "summary": movement.summary(),
    }
    if args.map:
        coords = label_word_map(model, seed=0)
        for item, (x, y) in zip(result["labels"], coords.tolist()):
            item["umap"] = [round(x, 4), round(y, 4)]
    _print_json(result)
    return 0


def ui_package() -> str:
    """The app's package: ``hpt_studio`` when installed with pip, ``app`` in a checkout."""
    from importlib.util import find_spec

    return "hpt_studio" if find_spec("hpt_studio") is not None else "app"


def cmd_app(args: argparse.Namespace) -> int:
    # The library never imports the UI; this command only hands over to it.
    from importlib import import_module

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    ui = import_module(ui_package())
    overrides: dict[str, Any] = {}
    if args.models:
        folder = Path(args.models).expanduser()
        if not folder.is_dir():
            raise UserError(f"--models {args.models}: no such folder; give a folder of checkpoint directories.")
        # a classifier checkpoint has its label tree beside its weights (a bare backbone has none)
        found = [
            d for d in sorted(folder.iterdir()) if (d / "config.json").is_file() and (d / "hierarchy.json").is_file()
        ]
        if not found:
            raise UserError(
                f"--models {args.models}: no checkpoint in it (a checkpoint is a folder with config.json and "
                "hierarchy.json, as 'train' writes); give the folder that holds them."
            )
        usual = list(ui.AppConfig().models)  # the demo models keep their order (the first is the default)
        found.sort(key=lambda d: (usual.index(d.name) if d.name in usual else len(usual), d.name))
        overrides["models"] = {d.name: d for d in found}
    if args.home:
        overrides["user_dir"] = Path(args.home).expanduser()
    ui.serve(ui.AppConfig(**overrides), host=args.host, port=args.port)
    return 0


# ---------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The parser; the flags of ``train`` and ``pretrain`` that set a config field come from its declaration."""
    # Here, not at the top: the model modules import torch, which ``validate`` (and ``--help``) need not wait for.
    from hpt_core.model import ABLATIONS, VARIANTS, HPTConfig
    from hpt_core.predict import RULES
    from hpt_core.pretrain import PRETRAIN_DEFAULTS, ResumeConfig
    from hpt_core.training import RECIPES, TrainConfig

    parser = argparse.ArgumentParser(
        prog="hpt-studio" if Path(sys.argv[0]).name.startswith("hpt-studio") else "python -m hpt_core",
        description="HPT Studio: hierarchy-aware prompt tuning for text classification.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a dataset file and print a JSON summary")
    p.add_argument("data", help="JSONL, JSON, CSV or TSV data file (optionally .gz)")
    p.add_argument("--hierarchy", help="taxonomy file (tab format: parent, then its children)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("train", help="train a model and save the best checkpoint")
    p.add_argument("--data", required=True, help="training data (split 80/10/10 when --dev/--test are not given)")
    p.add_argument("--dev", help="dev data (model selection)")
    p.add_argument("--test", help="test data (reported, never used for selection)")
    p.add_argument("--hierarchy", help="taxonomy file; default: the union of the label paths in the data")
    p.add_argument("--out", required=True, help="checkpoint directory to create")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    p.add_argument("--variant", default="hpt", choices=sorted(VARIANTS), help="model variant (default: hpt)")
    p.add_argument("--ablation", action="append", default=[], choices=sorted(ABLATIONS), help="HPT ablation")
    p.add_argument(
        "--code-faithful",
        action="store_true",
        help="reproduce the official code's deviations (model.CODE_FAITHFUL, training.CODE_FAITHFUL_TRAINING)",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="a named training recipe (training.RECIPES; paper: Adam 3e-5 for every parameter, constant, patience 6); "
        "the flags given override its values",
    )
    add_config_arguments(p, HPTConfig, include=("backbone", "max_length", "attention_dropout"))
    add_config_arguments(p, TrainConfig)  # every field: a new TrainConfig field gets its flag here
    p.add_argument("--split-seed", type=_seed, default=0, help="seed of the train/dev/test split")
    p.add_argument("--low-resource", type=_fraction, default=None, help="train on this fraction of train, e.g. 0.1")
    p.add_argument(
        "--weights",
        choices=("float32", "float16", "float16-delta", "mixed"),
        default="float32",
        help="storage precision: float32 (default), float16 (half the size), float16-delta (half the size, the "
        "backbone weights as fp16 differences from the local backbone file; loading needs that file), mixed (fp16 "
        "word embeddings only)",
    )
    p.add_argument("--strip-newsgroup-headers", action="store_true", help=STRIP_HELP)
    p.add_argument(
        "--label-names",
        help="display names the label words start from: TSV 'A > B<TAB>name[<TAB>description]' or JSON "
        '{"A > B": "name"} (e.g. assets/label-names/20ng.tsv); stored in the checkpoint',
    )
    p.add_argument("--log-file", help=LOG_FILE_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("pretrain", help="re-warm a backbone with continued masked-LM training on unlabelled text")
    p.add_argument("--data", action="append", required=True, help="data file or .txt (one text per line); repeatable")
    p.add_argument("--out", required=True, help="directory to write (a Hugging Face model directory)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    p.add_argument("--backbone", default="minilm-l6", help="backbone to re-warm (default: the raw 'minilm-l6')")
    pretrain_fields = ("max_steps", "epochs", "batch_size", "lr", "seed", "eval_every", "patience", "device")
    add_config_arguments(
        p,
        TrainConfig,
        include=pretrain_fields,
        defaults={k: v for k, v in PRETRAIN_DEFAULTS.items() if k in pretrain_fields},
        help={
            "epochs": "upper bound; --max-steps usually ends first",
            "eval_every": "held-out masked top-1 every N steps",
            "patience": "evaluations without gain before stopping",
        },
    )
    p.add_argument(
        "--max-length",
        type=_positive_int,
        default=PRETRAIN_DEFAULTS["max_length"],
        help=f"tokens per text (default: {PRETRAIN_DEFAULTS['max_length']})",
    )
    p.add_argument("--whole-word", action="store_true", help="mask whole words instead of single wordpieces")
    p.add_argument("--fp16-weights", action="store_true", help="store the weights in fp16 (half the size)")
    add_config_arguments(p, ResumeConfig)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run saved in OUT.resume/ (give the same settings; a difference is refused); "
        "starts from step 0 when there is none, so the same command can be relaunched after a stop",
    )
    p.add_argument("--log-file", help=LOG_FILE_HELP + " (continued on --resume)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a labelled file")
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--data", required=True)
    p.add_argument("--hierarchy", help="must match the model's hierarchy")
    p.add_argument("--split", choices=("train", "dev", "test"), help="only the documents of this split")
    p.add_argument("--strip-newsgroup-headers", action="store_true", help=STRIP_HELP)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict", help="predict label paths: JSON lines on stdout, or a CSV/JSONL file of predictions (--out)"
    )
    p.add_argument("--model", required=True, help="checkpoint directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--text", help="one text")
    group.add_argument(
        "--file",
        help="texts to classify: .txt (one per line), .csv/.tsv (a text column, optionally id) or .jsonl (objects "
        "with text, optionally id); optionally .gz; read as a stream",
    )
    p.add_argument(
        "--out",
        help="write the predictions to this file (id, text_preview, paths, probabilities, truncated, display_names, "
        "below_threshold) instead of stdout; it appears only when complete",
    )
    p.add_argument("--format", choices=("csv", "jsonl"), help="format of --out (default: from its suffix)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--threshold", type=float, default=0.0, help="score threshold (default 0: the paper's rule)")
    p.add_argument("--rule", choices=RULES, default="paper", help="hierarchy consistency rule (default: paper)")
    p.add_argument(
        "--best-path",
        action="store_true",
        help="a text with no label above the threshold gets the model's best path, flagged below_threshold "
        "(the app's 'Always show the best path')",
    )
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "explain", help="nearest vocabulary words of every label word and how far it moved from its init (JSON)"
    )
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--top-k", type=_positive_int, default=8)
    p.add_argument("--all-pieces", action="store_true", help="also return ## word pieces and punctuation")
    p.add_argument("--map", action="store_true", help="add 2-D UMAP coordinates of the label words")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("app", help="serve the HPT Studio web app (Gradio) on http://127.0.0.1:7860")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 to serve the network)")
    p.add_argument("--port", type=_positive_int, help="port (default 7860, or the next free one)")
    p.add_argument(
        "--models",
        help="a folder of checkpoints to serve as the built-in models, one sub-folder each (default: the checkout's "
        "checkpoints/, or $HPT_STUDIO_CHECKPOINTS)",
    )
    p.add_argument("--home", help="where models fine-tuned in the app are kept (default: $HPT_STUDIO_HOME)")
    p.set_defaults(func=cmd_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 1 internal error, 130 interrupted)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in train_config.json as the exact command
    try:
        return int(args.func(args))
    except HPTError as e:
        _note(f"error: {e}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _note("interrupted; nothing was saved.")
        return 130
    except Exception as e:  # an internal bug: one line, the traceback only on request
        if os.environ.get("HPT_DEBUG"):
            raise
        _note(f"internal error ({type(e).__name__}: {e}); rerun with HPT_DEBUG=1 for the traceback and report it.")
        return 1
