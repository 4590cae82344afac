"""Fine-tune: upload a dataset (or take the demo one) → validation report → settings and a time estimate → training
with live progress, curves and Cancel → evaluation, beside the frozen-embedding baseline (the duel) → the new model
in every picker, downloadable as a zip."""

from __future__ import annotations

import html
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from hpt_core.data import read_records, validate
from hpt_core.device import device_summary
from hpt_core.errors import DatasetError, HPTError
from hpt_core.finetune import prepare_splits
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.label_names import load_label_names
from hpt_core.model import HPTConfig
from hpt_core.training import TrainConfig

from .. import figures
from ..common import Studio, user_errors
from ..jobs import (
    VARIANT_CHOICES,
    BusyError,
    JobRequest,
    JobState,
    job_configs,
)
from ..timing import (
    MIN_EVALUATIONS,
    JobEstimate,
    cached_costs,
    calibrate,
    data_key,
    estimate_job,
    fallback_costs,
    format_duration,
    job_plan,
)

__all__ = [
    "render",
    "wire_training",
    "validate_upload",
    "check_label_names",
    "estimate",
    "estimate_markdown",
    "duel_view",
    "job_settings",
    "train_job",
    "watch",
    "reattach",
    "DEMO",
    "UPLOAD",
    "SETTINGS",
    "PROBLEM_HEADERS",
    "EARLY_STOPPING_HELP",
]

DEMO = "Demo dataset (real Web of Science abstracts)"
UPLOAD = "Upload my own data"
PROBLEM_HEADERS = ["#", "problem"]
MAX_PROBLEMS_SHOWN = 200
POLL_SECONDS = 1.0
# The panel's settings, in the order of the /train API after its three data inputs (README: keep it); the label-names
# upload comes after them, last, so that older callers with 11 inputs keep working.
SETTINGS = ("variant", "backbone", "epochs", "batch_size", "max_length", "lr", "adapt", "adapt_steps")
EARLY_STOPPING_HELP = (
    f"**Early stopping:** the job scores the dev set at least {MIN_EVALUATIONS} times (every epoch when there are "
    f"{MIN_EVALUATIONS} or more, else every 1/{MIN_EVALUATIONS} of the run) and stops after {{patience}} "
    "evaluations in a row without a dev macro-F1 gain; the model keeps its best dev state. Epochs are an upper bound."
)


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


def _job_hierarchy(data: Path, hierarchy: Path | None) -> LabelHierarchy:
    """The label tree a job on ``data`` trains on (as ``prepare_splits`` builds it)."""
    if hierarchy is not None:
        return LabelHierarchy.from_taxonomy(hierarchy)
    return LabelHierarchy.from_paths(p for r in read_records(data) for p in r.paths)


def check_label_names(
    studio: Studio, source: str, data_file: str | None, hierarchy_file: str | None, names_file: str | None
) -> tuple[list[str], str]:
    """Problems of a label-names upload against the data's label tree (each ``file:line: field: what to fix``, under
    the upload's own name) and a sentence for the report (empty without an upload)."""
    if not names_file:
        return [], ""
    names = Path(names_file)
    _check_size(names, names.name, studio.config.max_upload_mb)
    data, _, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    try:
        found = load_label_names(names, _job_hierarchy(data, hierarchy))
    except DatasetError as e:
        problems = getattr(e, "problems", None) or [str(e)]
        return [p.replace(str(names), names.name) for p in problems], ""
    h = _job_hierarchy(data, hierarchy)
    return [], (
        f"**Label names** ({html.escape(names.name)}): {len(found)} of {h.num_labels} labels get a display name; "
        "their label words start from it, and the app shows it with the model."
    )


def validate_upload(
    studio: Studio,
    source: str,
    data_file: str | None,
    hierarchy_file: str | None,
    names_file: str | None = None,
) -> tuple[str, list[list[Any]], dict[str, Any]]:
    """Validation report (markdown), problems table and the report as JSON (``ok`` tells whether training may start).
    ``names_file`` (a label-names upload) is checked against the data's label tree once the data has no problems."""
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
    names_line = ""
    if names_file and not found:
        names_problems, names_line = check_label_names(studio, source, data_file, hierarchy_file, names_file)
        problems += names_problems
        found += len(names_problems)
    elif names_file:
        names_line = "The label names are checked once the data has no problems."
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
    if names_line:
        lines.append(names_line)
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


_SPLITS: dict[tuple[str, int], Any] = {}  # the last data file's splits (estimates follow every slider move)


def _splits(data: Path, hierarchy: Path | None, seed: int, name: str, key: str) -> Any:
    cache_key = (f"{key}|{data_key(hierarchy) if hierarchy else ''}", seed)
    if cache_key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[cache_key] = prepare_splits(data, hierarchy_file=hierarchy, split_seed=seed, source_name=name)
    return _SPLITS[cache_key]


def estimate_markdown(estimate: JobEstimate, device: str, note: str = "") -> str:
    """The panel's time estimate: the full run as "about N min", the earliest early stop, and what it counts."""
    plan, costs = estimate.plan, estimate.costs
    parts = estimate.parts
    counted = []
    for part, seconds in parts.items():
        if part == "training steps":
            what = f"{plan.steps} training steps × {costs.step:.2f} s"
        elif part == "dev evaluations":
            what = f"{plan.evaluations} dev evaluations of {plan.n_dev} documents"
        elif part == "scoring dev and test":
            what = f"scoring {plan.n_dev + plan.n_test} dev and test documents"
        elif part == "adapting the backbone":
            what = f"{plan.adapt_steps} masked-LM steps adapting the backbone"
        else:
            what = part
        counted.append(f"{what} ({format_duration(seconds)})")
    full, earliest = format_duration(estimate.seconds), format_duration(estimate.earliest)
    when = (
        f"**about {full}** if it runs every epoch; early stopping (after {plan.patience} evaluations without a dev "
        f"macro-F1 gain) can end it from about {earliest}"
        if estimate.earliest < 0.9 * estimate.seconds
        else f"**about {full}**"
    )
    return (
        f"Training runs on **{html.escape(device)}**: {when}.\n\nIt counts: {', '.join(counted)}. Costs: "
        f"{html.escape(costs.source)}{'; ' + note if note else ''}. While the job runs, its time left comes from its "
        "own measured rates."
    )


def estimate(
    studio: Studio,
    report: dict[str, Any] | None,
    settings: Mapping[str, Any],
    source: str = DEMO,
    data_file: str | None = None,
    hierarchy_file: str | None = None,
    measure: bool = True,
) -> Iterator[str]:
    """The time estimate of a job with these ``settings`` (``SETTINGS`` by name) on the validated data: yields a
    "measuring" line first when it calibrates (``app.timing.calibrate``: a few real training steps on this machine,
    once per backbone, batch, length and data file), then the estimate. While another job runs it does not measure
    (that would slow the job and be slowed by it): it uses an earlier measurement or the 2-core constants."""
    device = device_summary()
    if not report or not report.get("ok"):
        yield f"Training runs on **{device}**. Validate a dataset to see a time estimate."
        return
    try:
        train, model = job_settings(studio, settings)
    except HPTError as e:
        yield f"Training runs on **{device}**. No estimate: {html.escape(str(e), quote=False)}"
        return
    data, name, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    key = data_key(data)
    splits = _splits(data, hierarchy, train.seed, name, key)
    adapt_steps = int(settings.get("adapt_steps") or 0) if settings.get("adapt") else 0
    baseline = studio.config.baseline_backbone is not None
    plan = job_plan(train, len(splits.train), len(splits.dev), len(splits.test), adapt_steps, baseline)
    costs, note = cached_costs(model, train, key), ""
    if costs is None and measure and not studio.jobs.status().running:
        yield f"Training runs on **{device}**. Measuring this machine's step time for these settings…"
        try:
            costs = calibrate(splits, model, train, key)
        except Exception as e:  # noqa: BLE001 - e.g. a backbone that cannot be loaded offline: use the constants
            note = f"could not measure here ({type(e).__name__})"
    elif costs is None:
        note = "not measured: a job is running" if measure else ""
    if costs is None:
        costs = fallback_costs(model.backbone, train.batch_size, model.max_length)
    yield estimate_markdown(estimate_job(plan, costs), device, note)


def _progress_html(state: JobState) -> str:
    fraction = state.step / state.total_steps if state.total_steps else 0.0
    eta = ""
    if state.eta_seconds is not None and state.running:
        eta = f" · about {format_duration(state.eta_seconds)} left" if state.eta_seconds >= 1 else " · finishing"
    colour = {"failed": "#c0392b", "cancelled": "#7f8c8d", "finished": "#27ae60"}.get(state.state, "#2c7fb8")
    return (
        '<div class="hpt-progress">'
        f'<div style="background:#e8eef3;border-radius:6px;height:14px;overflow:hidden">'
        f'<div style="width:{100 * fraction:.1f}%;background:{colour};height:14px"></div></div>'
        '<div style="font-size:0.9em;margin-top:4px">'
        f"{html.escape(state.state)}{' · ' + html.escape(state.phase) if state.phase and state.running else ''}"
        f" · step {state.step}/{state.total_steps}"
        f" · {format_duration(state.elapsed_seconds)} elapsed{eta}</div></div>"
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
    if state.running and state.estimate:
        lines.append(
            f"Estimated before it started: about {format_duration(state.estimate['seconds'])} for every epoch; the "
            "time left above comes from this job's own measured rate."
        )
    if state.device:
        lines.append(f"Device: {html.escape(state.device)}")
    return "\n\n".join(lines)


DUEL_HEADERS = [
    "split",
    "level",
    "documents",
    "HPT micro-F1 %",
    "HPT macro-F1 %",
    "baseline micro-F1 %",
    "baseline macro-F1 %",
    "macro-F1 margin (points)",
]


def _percent(value: Any) -> Any:
    return round(100 * float(value), 1) if isinstance(value, (int, float)) else ""


def duel_view(state: JobState) -> tuple[dict[str, Any] | None, str]:
    """The duel of a finished job: HPT and the frozen-embedding baseline side by side on dev and test, overall and
    per depth (``{"headers", "data"}`` for a table, F1 in %; None when there is nothing to compare), and a Markdown
    verdict (``hpt_core.sentence_baseline.duel_verdict``) or why the baseline is missing."""
    if state.state != "finished" or not state.metrics:
        return None, ""
    if not state.baseline:
        why = state.baseline_error or "No frozen-embedding baseline was fitted for this job."
        return None, f"**Baseline:** {html.escape(why)}"
    from hpt_core.sentence_baseline import duel_table, duel_verdict

    try:
        rows = duel_table(state.metrics, state.baseline)
        verdict = duel_verdict(state.metrics, state.baseline)
    except (KeyError, TypeError, ValueError) as e:  # a malformed result: the model itself is fine
        return None, f"**Baseline:** the comparison could not be built ({html.escape(type(e).__name__)})."
    data = [
        [
            row["split"],
            row["level"],
            row["n_documents"],
            _percent(row["hpt_micro_f1"]),
            _percent(row["hpt_macro_f1"]),
            _percent(row["baseline_micro_f1"]),
            _percent(row["baseline_macro_f1"]),
            _percent(row["macro_f1_margin"]),
        ]
        for row in rows
    ]
    b = state.baseline
    about = (
        f"The baseline: {html.escape(str(b.get('name', 'frozen embeddings')))} on "
        f"`{html.escape(str(b.get('backbone', '?')))}`"
        + (f", C = {b['c']:g} (chosen on {html.escape(str(b.get('chosen_on', 'dev')))})" if b.get("c") else "")
        + (f", fitted in {format_duration(b['seconds'])}" if isinstance(b.get("seconds"), (int, float)) else "")
        + ", on the same train/dev/test split as the HPT model."
        + (f" {html.escape(str(b['note']))}" if b.get("note") else "")
    )
    return {"headers": DUEL_HEADERS, "data": data}, f"**Verdict:** {html.escape(verdict)}\n\n{about}"


def _view(studio: Studio, state: JobState, pickers: int) -> list[Any]:
    """Output values of one job snapshot: progress, status, curves, depth bars, confusion, duel table, verdict,
    download, pickers, buttons."""
    curves = figures.training_curves_figure(state.steps, state.losses, state.evals)
    depth = confusion = duel = gr.update(visible=False)
    verdict = gr.update(value="", visible=False)
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
        table, text = duel_view(state)
        if table is not None:
            duel = gr.update(value=table, visible=True)
        verdict = gr.update(value=text, visible=bool(text))
        download = gr.update(value=str(_zip(studio, state.model_name)), visible=True)
        names = studio.registry.names()
        picker = [gr.update(choices=names)] * pickers
    running = state.running
    buttons = [gr.update(interactive=not running), gr.update(interactive=running)]
    return [
        _progress_html(state),
        _status_markdown(state),
        curves,
        depth,
        confusion,
        duel,
        verdict,
        download,
        *picker,
        *buttons,
    ]


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


def job_settings(studio: Studio, settings: Mapping[str, Any]) -> tuple[TrainConfig, HPTConfig]:
    """The two configs of a job with the panel's ``settings`` (``SETTINGS`` by name): ``variant`` and ``backbone``
    from the app's lists (a backbone off the allow-list is never loaded), and ``epochs``, ``batch_size``,
    ``max_length``, ``lr`` within the app's limits, overriding its defaults; each value is then checked by its config
    dataclass."""
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
    return job_configs(cfg, variant, **values)


def train_job(
    studio: Studio,
    source: str,
    data_file: str | None,
    hierarchy_file: str | None,
    settings: Mapping[str, Any],
    pickers: int = 0,
    names_file: str | None = None,
) -> Iterator[list[Any]]:
    """Start a job (or refuse at once: busy, or problems in the data or the label names) and stream its progress
    until it ends.

    ``settings`` are the panel's values by name (``SETTINGS``): ``variant`` and ``backbone`` from the app's lists,
    ``adapt``/``adapt_steps``, and config fields (``epochs``, ``batch_size``, ``max_length``, ``lr``) that override
    the app's defaults. The app's limits are checked here; every value itself is checked by its config dataclass.
    ``names_file`` is an optional label-names upload (TSV or JSON, ``hpt_core.label_names``).
    """
    train, model = job_settings(studio, settings)
    if studio.jobs.status().running:
        raise BusyError(
            "Busy: a fine-tune job is already running; try again when the current job finishes (or cancel it)."
        )
    _, _, report = validate_upload(studio, source, data_file, hierarchy_file, names_file)
    if not report["ok"]:
        raise HPTError(
            f"{report['source']}: {report['problems_found']} problem(s) in the data or the label names; fix them "
            "(see the validation report) before training."
        )
    data, name, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    adapt_steps = int(settings["adapt_steps"]) if settings["adapt"] else 0
    names = Path(names_file) if names_file else None
    request = JobRequest(
        data,
        name,
        train,
        model,
        hierarchy_file=hierarchy,
        adapt_steps=adapt_steps,
        label_names_file=names,
        label_names_name=names.name if names else None,
    )
    state = studio.jobs.start(request)
    yield from watch(studio, pickers, state)


def render(studio: Studio) -> dict[str, Any]:
    """The fine-tune tab's layout and its data events (``/validate``); ``wire_training`` adds the job events."""
    cfg = studio.config
    gr.Markdown(
        'Train HPT on your own hierarchy. **Data**: JSONL (`{"text": ..., "labels": [["A", "B"]]}` per line), '
        "JSON, CSV or TSV with `text` and `labels` columns (paths as `A > B`, several separated by `;`), optionally a "
        "`split` column (`train`/`dev`/`test`). **Hierarchy** (optional): a tab-separated file, each line a parent "
        "followed by its children (`Root` first); otherwise the union of the label paths. **Label names** "
        "(optional): a display name, and optionally a description, per label path, as TSV "
        '(`path<TAB>name<TAB>description`, e.g. `assets/label-names/20ng.tsv`) or JSON (`{"A > B": "name"}`); '
        "the label words start from these names and the app shows them with the model."
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
            names_file = gr.File(
                elem_id="ft-label-names",
                label="Label names (TSV or JSON, optional)",
                file_types=[".tsv", ".txt", ".json"],
                type="filepath",
            )
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
            epochs = gr.Slider(
                1,
                cfg.max_epochs,
                value=cfg.train.epochs,
                step=1,
                label="Epochs (at most: early stopping may end sooner)",
            )
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
        gr.Markdown(EARLY_STOPPING_HELP.format(patience=cfg.train.patience), elem_id="ft-early-stopping")
        estimate_md = gr.Markdown(
            f"Training runs on **{device_summary()}**. Validate a dataset to see a time estimate.",
            elem_id="ft-estimate",
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
    duel_table = gr.Dataframe(
        elem_id="ft-duel",
        headers=DUEL_HEADERS,
        label="HPT vs the frozen-embedding baseline, same splits (F1 %, per depth)",
        interactive=False,
        visible=False,
    )
    verdict_md = gr.Markdown(elem_id="ft-verdict", visible=False)
    download = gr.DownloadButton("Download the model (.zip)", visible=False)
    status_json = gr.JSON(visible=False)

    source.change(
        lambda s: [gr.update(visible=s == UPLOAD)] * 2, source, [data_file, hierarchy_file], api_visibility="private"
    )

    def on_validate(src: str, data: str | None, hier: str | None, names: str | None = None) -> list[Any]:
        text, rows, report = validate_upload(studio, src, data, hier, names)
        return [text, rows, report, gr.update(interactive=report["ok"])]

    controls = [variant, backbone, epochs, batch_size, max_length, lr, adapt, adapt_steps]

    def on_estimate(report: dict[str, Any] | None, src: str, data: str | None, hier: str | None, *values: Any):
        yield from estimate(studio, report, dict(zip(SETTINGS, values, strict=True)), src, data, hier)

    estimate_inputs = [report_json, source, data_file, hierarchy_file, *controls]
    validate_button.click(
        user_errors(on_validate),
        [source, data_file, hierarchy_file, names_file],
        [report_md, problems, report_json, train_button],
        api_name="validate",
    ).then(
        lambda r: gr.update(visible=bool(r) and not r.get("ok", True)), report_json, problems, api_visibility="private"
    ).then(user_errors(on_estimate), estimate_inputs, estimate_md, api_visibility="private")
    for control in (source, data_file, hierarchy_file, names_file):
        control.change(lambda: gr.update(interactive=False), None, train_button, api_visibility="private")
    sliders = (epochs, batch_size, max_length, adapt_steps)  # on release: a drag would measure every value it passes
    for event in [c.release for c in sliders] + [c.change for c in (variant, backbone, adapt)]:
        event(
            user_errors(on_estimate),
            estimate_inputs,
            estimate_md,
            api_visibility="private",
            trigger_mode="always_last",
            concurrency_limit=1,
            concurrency_id="ft-estimate",
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
        "settings": dict(zip(SETTINGS, controls)),
        "hierarchy_file": hierarchy_file,
        "label_names_file": names_file,
        "view": [progress, status_md, curves, depth_plot, confusion_plot, duel_table, verdict_md, download],
        "status_button": status_button,
    }


def reattach(studio: Studio, pickers: int, n_outputs: int) -> Iterator[list[Any]]:
    """On page load: follow a job that is already running (after a reload), else change nothing."""
    if studio.jobs.status().running:
        yield from watch(studio, pickers)
    else:
        yield [gr.skip()] * n_outputs


def wire_training(studio: Studio, ft: dict[str, Any], pickers: list[gr.Dropdown], demo: gr.Blocks) -> None:
    """Events of the job (``/train``, ``/cancel``, ``/job_status``); ``pickers`` get the new model when it is saved.

    ``/train`` takes the three data inputs, the ``SETTINGS`` in order, then the optional label-names file (last, with
    a default, so callers that send the first 11 inputs keep working)."""
    outputs = [*ft["view"], *pickers, ft["train"], ft["cancel"]]
    n = len(pickers)

    def on_train(
        source: str,
        data_file: str | None,
        hierarchy_file: str | None,
        variant: str,
        backbone: str,
        epochs: float,
        batch_size: float,
        max_length: float,
        lr: float,
        adapt: bool,
        adapt_steps: float,
        label_names_file: str | None = None,
    ) -> Iterator[list[Any]]:
        values = (variant, backbone, epochs, batch_size, max_length, lr, adapt, adapt_steps)
        settings = dict(zip(SETTINGS, values, strict=True))
        yield from train_job(studio, source, data_file, hierarchy_file, settings, n, label_names_file)

    ft["train"].click(
        user_errors(on_train),
        [ft["source"], ft["data_file"], ft["hierarchy_file"], *ft["settings"].values(), ft["label_names_file"]],
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
