"""Fine-tune: upload a dataset (or take the demo one) → validation report → settings and a time estimate → training
with live progress, curves and Cancel → evaluation → the new model in every picker, downloadable as a zip."""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from app import figures
from app.common import Studio, user_errors
from app.jobs import VARIANT_CHOICES, BusyError, JobRequest, JobState, estimate_seconds, job_configs
from hpt_core.data import validate
from hpt_core.device import device_summary
from hpt_core.errors import HPTError

__all__ = [
    "render",
    "wire_training",
    "validate_upload",
    "train_job",
    "watch",
    "reattach",
    "DEMO",
    "UPLOAD",
    "SETTINGS",
    "PROBLEM_HEADERS",
]

DEMO = "Demo dataset (real Web of Science abstracts)"
UPLOAD = "Upload my own data"
PROBLEM_HEADERS = ["#", "problem"]
MAX_PROBLEMS_SHOWN = 200
POLL_SECONDS = 1.0
# The panel's settings, in the order of the /train API after its three data inputs (README: keep it).
SETTINGS = ("variant", "backbone", "epochs", "batch_size", "max_length", "lr", "adapt", "adapt_steps")


def _inputs(
    studio: Studio, source: str, data_file: str | None, hierarchy_file: str | None
) -> tuple[Path, str, Path | None]:
    """The data file, the name to show for it, and the hierarchy file, for the chosen source."""
    if source == DEMO:
        return studio.config.demo_dataset, studio.config.demo_dataset.name, studio.config.demo_hierarchy
    if not data_file:
        raise HPTError(
            "Upload a data file first (JSONL, JSON, CSV or TSV with text and labels), or pick the demo dataset."
        )
    data = Path(data_file)
    return data, data.name, Path(hierarchy_file) if hierarchy_file else None


def _check_size(path: Path, name: str, limit_mb: int) -> None:
    size = path.stat().st_size
    if size > limit_mb * 1024 * 1024:
        raise HPTError(
            f"{name}: the file is {size / 1024 / 1024:.1f} MB, over this app's limit of {limit_mb} MB; "
            "upload a smaller sample."
        )


def validate_upload(
    studio: Studio, source: str, data_file: str | None, hierarchy_file: str | None
) -> tuple[str, list[list[Any]], dict[str, Any]]:
    """Validation report (markdown), problems table and the report as JSON (``ok`` tells whether training may start)."""
    data, name, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    _check_size(data, name, studio.config.max_upload_mb)
    if hierarchy is not None:
        _check_size(hierarchy, hierarchy.name, studio.config.max_upload_mb)
    report = validate(data, hierarchy_file=hierarchy, max_problems=MAX_PROBLEMS_SHOWN)
    problems = [p.replace(str(data), name) for p in report.problems]
    if hierarchy is not None:
        problems = [p.replace(str(hierarchy), hierarchy.name) for p in problems]
    if report.n_documents > studio.config.max_documents:
        problems.append(
            f"{name}: {report.n_documents:,} documents is over this app's limit of "
            f"{studio.config.max_documents:,}; use a sample."
        )
    if len(report.labels_per_depth) > studio.config.max_depth:
        problems.append(
            f"{name}: the label tree has {len(report.labels_per_depth)} levels, over this app's limit of "
            f"{studio.config.max_depth}; shorten the label paths."
        )
    if report.n_labels > studio.config.max_labels:
        problems.append(f"{name}: {report.n_labels:,} labels is over this app's limit of {studio.config.max_labels:,}.")
    found = (report.problems_found or 0) + len(problems) - len(report.problems)
    esc = html.escape
    lines = [f"### {esc(name)}"]
    lines.append(
        f"**{report.n_documents:,} documents** without problems · **{report.n_labels} labels** · labels per depth: "
        + (", ".join(f"depth {d}: {n}" for d, n in enumerate(report.labels_per_depth)) or "none")
    )
    if set(report.splits) - {"unsplit"}:
        lines.append(
            "Splits: "
            + ", ".join(f"{k} {v:,}" for k, v in report.splits.items())
            + " (missing dev/test sets are carved from train, seeded)."
        )
    elif report.n_documents:
        lines.append("No `split` column: training makes a seeded, stratified 80/10/10 train/dev/test split.")
    if found:
        lines.append(
            f"**{found} problem{'s' if found != 1 else ''} found; training is disabled until they are fixed.** "
            "Each line says where and how to fix it."
        )
    else:
        lines.append("**No problems found: ready to train.**")
    rare = [path for path, count in report.label_counts.items() if count == 0]
    if rare and not found:
        lines.append(
            f"{len(rare)} label(s) of the hierarchy have no document (e.g. {esc(rare[0])}); "
            "the model will rarely predict them."
        )
    result = report.to_dict() | {"source": name, "problems": problems, "problems_found": found, "ok": found == 0}
    return "\n\n".join(lines), [[k + 1, p] for k, p in enumerate(problems)], result


def estimate(
    studio: Studio,
    report: dict[str, Any] | None,
    epochs: float,
    batch_size: float,
    max_length: float,
    backbone: str,
    adapt: bool = False,
    adapt_steps: float = 0,
) -> str:
    """A sentence with the expected training time on this machine."""
    device = device_summary()
    if not report or not report.get("ok"):
        return f"Training runs on **{device}**. Validate a dataset to see a time estimate."
    n_train = (
        int(report["n_documents"] * 0.8) if not report.get("splits", {}).get("train") else report["splits"]["train"]
    )
    seconds = estimate_seconds(n_train, int(epochs), int(batch_size), int(max_length), backbone, studio.config)
    adapting = ""
    if adapt and adapt_steps:
        per_step = estimate_seconds(int(batch_size), 1, int(batch_size), int(max_length), backbone, studio.config)
        seconds += per_step * int(adapt_steps)
        adapting = f", after {int(adapt_steps)} masked-LM steps adapting the backbone"
    where = "CPU" if device.startswith("CPU") else "GPU (much faster than this CPU estimate)"
    return (
        f"Training runs on **{device}**. About **{_duration(seconds)}** on a 2-core CPU for {n_train:,} "
        f"training documents × {int(epochs)} epochs{adapting} ({where}); early stopping may end it sooner."
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _progress_html(state: JobState) -> str:
    fraction = state.step / state.total_steps if state.total_steps else 0.0
    eta = f" · about {_duration(state.eta_seconds)} left" if state.eta_seconds is not None and state.running else ""
    colour = {"failed": "#c0392b", "cancelled": "#7f8c8d", "finished": "#27ae60"}.get(state.state, "#2c7fb8")
    return (
        '<div class="hpt-progress">'
        f'<div style="background:#e8eef3;border-radius:6px;height:14px;overflow:hidden">'
        f'<div style="width:{100 * fraction:.1f}%;background:{colour};height:14px"></div></div>'
        '<div style="font-size:0.9em;margin-top:4px">'
        f"{html.escape(state.state)}{' · ' + html.escape(state.phase) if state.phase and state.running else ''}"
        f" · step {state.step}/{state.total_steps}"
        f" · {_duration(state.elapsed_seconds)} elapsed{eta}</div></div>"
    )


def _status_markdown(state: JobState) -> str:
    lines = [html.escape(state.message)]
    if state.data_summary:
        lines.append(f"Data: {html.escape(state.data_summary)}")
    if state.adapt:
        a = state.adapt
        lines.append(
            f"Backbone adapted to the training texts: {a['steps']} masked-LM steps in {a['seconds']:.0f} s, held-out "
            f"masked top-1 {100 * a['masked_top1_before']:.1f} % → {100 * a['masked_top1_after']:.1f} %."
        )
    if state.device:
        lines.append(f"Device: {html.escape(state.device)}")
    return "\n\n".join(lines)


def _view(studio: Studio, state: JobState, pickers: int) -> list[Any]:
    """Output values of one job snapshot: progress, status, curves, depth bars, confusion, download, pickers,
    buttons."""
    curves = figures.training_curves_figure(state.steps, state.losses, state.evals)
    depth = confusion = gr.update(visible=False)
    download = gr.update(visible=False)
    picker = [gr.skip()] * pickers
    if state.state == "finished" and state.model_name:
        test = state.metrics.get("test") or state.metrics.get("dev")
        if test:
            depth = gr.update(value=figures.per_depth_figure({"test": test["per_depth"]}), visible=True)
            conf = test.get("top_level_confusion")
            if conf:
                rows = conf["labels"][: len(conf["matrix"])]
                confusion = gr.update(
                    value=figures.confusion_figure(rows, conf["matrix"], columns=conf["labels"]), visible=True
                )
        download = gr.update(value=str(_zip(studio, state.model_name)), visible=True)
        names = studio.registry.names()
        picker = [gr.update(choices=names)] * pickers
    running = state.running
    buttons = [gr.update(interactive=not running), gr.update(interactive=running)]
    return [_progress_html(state), _status_markdown(state), curves, depth, confusion, download, *picker, *buttons]


def _zip(studio: Studio, name: str) -> Path:
    """A zip of the model's checkpoint directory (made once, in a cleaned-at-start-up folder)."""
    folder = studio.config.user_dir / ".downloads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.zip"
    if not target.exists():
        shutil.make_archive(str(folder / name), "zip", root_dir=studio.registry.directory(name))
    return target


def watch(studio: Studio, pickers: int = 0, first: JobState | None = None) -> Iterator[list[Any]]:
    """Yield the view of the current job once a second until it ends (or once when no job runs)."""
    state = first or studio.jobs.status()
    yield _view(studio, state, pickers)
    while state.running:
        time.sleep(POLL_SECONDS)
        state = studio.jobs.status()
        yield _view(studio, state, pickers)


def train_job(
    studio: Studio,
    source: str,
    data_file: str | None,
    hierarchy_file: str | None,
    settings: Mapping[str, Any],
    pickers: int = 0,
) -> Iterator[list[Any]]:
    """Start a job (or refuse at once: busy, or problems in the data) and stream its progress until it ends.

    ``settings`` are the panel's values by name (``SETTINGS``): ``variant`` and ``backbone`` from the app's lists,
    ``adapt``/``adapt_steps``, and config fields (``epochs``, ``batch_size``, ``max_length``, ``lr``) that override
    the app's defaults. The app's limits are checked here; every value itself is checked by its config dataclass.
    """
    cfg = studio.config
    backbone, variant = settings["backbone"], settings["variant"]
    if backbone not in cfg.backbones.values():
        raise HPTError(
            f"Backbone {backbone!r} is not offered here; choose one of: {', '.join(cfg.backbones.values())}."
        )
    if variant not in VARIANT_CHOICES.values():
        raise HPTError(f"Unknown variant {variant!r}; choose one of: {', '.join(VARIANT_CHOICES.values())}.")
    values = {
        "backbone": backbone,
        "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]),
        "max_length": int(settings["max_length"]),
        "lr": float(settings["lr"]),
    }
    limits = [
        (values["epochs"] <= cfg.max_epochs, f"Epochs must be at most {cfg.max_epochs}"),
        (values["batch_size"] <= cfg.max_batch_size, f"Batch size must be at most {cfg.max_batch_size}"),
        (values["max_length"] <= cfg.max_length_limit, f"Maximum length must be at most {cfg.max_length_limit}"),
        (values["lr"] <= cfg.max_lr, f"Learning rate must be at most {cfg.max_lr:g}"),
    ]
    for ok, message in limits:
        if not ok:
            raise HPTError(f"{message} in this app.")
    train, model = job_configs(cfg, variant, **values)
    if studio.jobs.status().running:
        raise BusyError(
            "Busy: a fine-tune job is already running; try again when the current job finishes (or cancel it)."
        )
    _, _, report = validate_upload(studio, source, data_file, hierarchy_file)
    if not report["ok"]:
        raise HPTError(
            f"{report['source']}: {report['problems_found']} problem(s) in the data; fix them (see the validation "
            "report) before training."
        )
    data, name, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    adapt_steps = int(settings["adapt_steps"]) if settings["adapt"] else 0
    request = JobRequest(data, name, train, model, hierarchy_file=hierarchy, adapt_steps=adapt_steps)
    state = studio.jobs.start(request)
    yield from watch(studio, pickers, state)


def render(studio: Studio) -> dict[str, Any]:
    """The fine-tune tab's layout and its data events (``/validate``); ``wire_training`` adds the job events."""
    cfg = studio.config
    gr.Markdown(
        'Train HPT on your own hierarchy. **Data**: JSONL (`{"text": ..., "labels": [["A", "B"]]}` per line), '
        "JSON, CSV or TSV with `text` and `labels` columns (paths as `A > B`, several separated by `;`), optionally a "
        "`split` column (`train`/`dev`/`test`). **Hierarchy** (optional): a tab-separated file, each line a parent "
        "followed by its children (`Root` first); otherwise the union of the label paths."
    )
    with gr.Row():
        with gr.Column():
            source = gr.Radio([DEMO, UPLOAD], value=DEMO, label="Data", elem_id="ft-source")
            data_file = gr.File(
                elem_id="ft-data",
                label="Data file",
                file_types=[".jsonl", ".json", ".csv", ".tsv", ".gz"],
                type="filepath",
                visible=False,
            )
            hierarchy_file = gr.File(label="Hierarchy file (optional)", type="filepath", visible=False)
            validate_button = gr.Button("Validate", variant="secondary", elem_id="ft-validate")
        with gr.Column():
            report_md = gr.Markdown(
                elem_id="ft-report", value="Pick the demo dataset or upload a file, then **Validate**."
            )
            problems = gr.Dataframe(
                elem_id="ft-problems",
                headers=PROBLEM_HEADERS,
                label="Problems (file:line: field: what to fix)",
                interactive=False,
                wrap=True,
                max_height=300,
                visible=False,
            )
            report_json = gr.JSON(visible=False)
    with gr.Accordion("Settings", open=True):
        with gr.Row():
            variant = gr.Dropdown(list(VARIANT_CHOICES.items()), value="hpt", label="Method")
            offered = list(cfg.backbones.values())
            default_backbone = cfg.model.backbone if cfg.model.backbone in offered else offered[0]
            backbone = gr.Dropdown(list(cfg.backbones.items()), value=default_backbone, label="Backbone")
        with gr.Row():
            epochs = gr.Slider(1, cfg.max_epochs, value=cfg.train.epochs, step=1, label="Epochs")
            batch_size = gr.Slider(1, cfg.max_batch_size, value=cfg.train.batch_size, step=1, label="Batch size")
            max_length = gr.Slider(
                32, cfg.max_length_limit, value=cfg.model.max_length, step=16, label="Maximum length (tokens)"
            )
            lr = gr.Number(value=cfg.train.lr, label="Learning rate", minimum=1e-7, maximum=cfg.max_lr)
        with gr.Row():
            adapt = gr.Checkbox(
                value=not device_summary().startswith("CPU"),
                label="First adapt the backbone to my texts (masked LM)",
                info="Continued masked-LM training on the training texts before prompt tuning: helps when they are "
                "far from the backbone's pre-training text. Off by default on CPU (each step costs about a training "
                "step).",
            )
            adapt_steps = gr.Slider(50, 2000, value=300, step=50, label="Adaptation steps")
        estimate_md = gr.Markdown(
            estimate(studio, None, cfg.train.epochs, cfg.train.batch_size, cfg.model.max_length, default_backbone)
        )
    with gr.Row():
        train_button = gr.Button("Train", variant="primary", interactive=False, elem_id="ft-train")
        cancel_button = gr.Button("Cancel", variant="stop", interactive=False, elem_id="ft-cancel")
        status_button = gr.Button("Refresh status", variant="secondary")
    progress = gr.HTML(elem_id="ft-progress")
    status_md = gr.Markdown(elem_id="ft-status")
    curves = gr.Plot(label="Training loss and dev F1", elem_id="ft-curves")
    with gr.Row():
        depth_plot = gr.Plot(label="Test F1 per depth", visible=False)
        confusion_plot = gr.Plot(label="Top-level confusion (test)", visible=False)
    download = gr.DownloadButton("Download the model (.zip)", visible=False)
    status_json = gr.JSON(visible=False)

    source.change(
        lambda s: [gr.update(visible=s == UPLOAD)] * 2, source, [data_file, hierarchy_file], api_visibility="private"
    )

    def on_validate(src: str, data: str | None, hier: str | None) -> list[Any]:
        text, rows, report = validate_upload(studio, src, data, hier)
        return [text, rows, report, gr.update(interactive=report["ok"])]

    validate_button.click(
        user_errors(on_validate),
        [source, data_file, hierarchy_file],
        [report_md, problems, report_json, train_button],
        api_name="validate",
    ).then(
        lambda r: gr.update(visible=bool(r) and not r.get("ok", True)), report_json, problems, api_visibility="private"
    ).then(
        lambda *args: estimate(studio, *args),
        [report_json, epochs, batch_size, max_length, backbone, adapt, adapt_steps],
        estimate_md,
        api_visibility="private",
    )
    for control in (source, data_file, hierarchy_file):
        control.change(lambda: gr.update(interactive=False), None, train_button, api_visibility="private")
    for control in (epochs, batch_size, max_length, backbone, adapt, adapt_steps):
        control.change(
            lambda *args: estimate(studio, *args),
            [report_json, epochs, batch_size, max_length, backbone, adapt, adapt_steps],
            estimate_md,
            api_visibility="private",
        )

    return {
        "source": source,
        "data_file": data_file,
        "validate": validate_button,
        "train": train_button,
        "cancel": cancel_button,
        "report": report_md,
        "problems": problems,
        "status": status_md,
        "status_json": status_json,
        "settings": dict(zip(SETTINGS, [variant, backbone, epochs, batch_size, max_length, lr, adapt, adapt_steps])),
        "hierarchy_file": hierarchy_file,
        "view": [progress, status_md, curves, depth_plot, confusion_plot, download],
        "status_button": status_button,
    }


def reattach(studio: Studio, pickers: int, n_outputs: int) -> Iterator[list[Any]]:
    """On page load: follow a job that is already running (after a reload), else change nothing."""
    if studio.jobs.status().running:
        yield from watch(studio, pickers)
    else:
        yield [gr.skip()] * n_outputs


def wire_training(studio: Studio, ft: dict[str, Any], pickers: list[gr.Dropdown], demo: gr.Blocks) -> None:
    """Events of the job (``/train``, ``/cancel``, ``/job_status``); ``pickers`` get the new model when it is saved."""
    outputs = [*ft["view"], *pickers, ft["train"], ft["cancel"]]
    n = len(pickers)

    def on_train(*args: Any) -> Iterator[list[Any]]:  # one signature for the whole /train API, as before
        source, data_file, hierarchy_file, *values = args
        settings = dict(zip(ft["settings"], values, strict=True))  # the components' names, in the inputs' order
        yield from train_job(studio, source, data_file, hierarchy_file, settings, pickers=n)

    ft["train"].click(
        user_errors(on_train),
        [ft["source"], ft["data_file"], ft["hierarchy_file"], *ft["settings"].values()],
        outputs,
        api_name="train",
        show_progress="hidden",
        concurrency_limit=None,
    )
    ft["cancel"].click(
        lambda: studio.jobs.cancel().to_dict(), None, ft["status_json"], api_name="cancel", concurrency_limit=None
    )

    def follow() -> Iterator[list[Any]]:
        yield from watch(studio, n)

    ft["status_button"].click(
        lambda: studio.jobs.status().to_dict(), None, ft["status_json"], api_name="job_status", concurrency_limit=None
    ).then(follow, None, outputs, api_visibility="private", show_progress="hidden")

    def on_load() -> Iterator[list[Any]]:
        yield from reattach(studio, n, len(outputs))

    demo.load(on_load, None, outputs, api_visibility="private", show_progress="hidden")
