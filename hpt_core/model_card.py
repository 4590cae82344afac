"""The model card (``README.md``) written into every checkpoint directory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpt_core.sentence_baseline import duel_table, duel_verdict

if TYPE_CHECKING:
    from hpt_core.model import HPTModel

__all__ = ["render_model_card", "baseline_section", "with_baseline_section", "BASELINE_HEADING"]

BASELINE_HEADING = "## Compared with a frozen-embedding baseline"
_LOAD_HEADING = "## How to load"


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f} %" if isinstance(value, (int, float)) else "–"


def render_model_card(
    model: HPTModel,
    metrics: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    description: str | None = None,
    weights: str = "float32",
) -> str:
    """Markdown describing data, variant, metrics and how to load the checkpoint (``description``: a paragraph on
    what the model is for and its limits; ``weights``: the storage precision of ``model.safetensors``)."""
    cfg = model.config
    h = model.hierarchy
    lines = [
        "---",
        "library_name: hpt-studio",
        "tags: [hierarchical-text-classification, prompt-tuning, hpt]",
        "---",
        f"# HPT Studio checkpoint: {cfg.variant_name}",
        "",
        "Hierarchical text classifier trained with HPT Studio, an implementation of *HPT: Hierarchy-aware Prompt "
        "Tuning for Hierarchical Text Classification* (Wang et al., EMNLP 2022).",
        "",
        *([description, ""] if description else []),
        "## Model",
        f"- Variant: `{cfg.variant_name}` (template `{cfg.template}`, loss `{cfg.loss}`, MLM `{cfg.mlm}`, "
        f"constraint `{cfg.constraint}`, injection `{cfg.injection}`, connection `{cfg.connection}`, "
        f"code-faithful `{cfg.is_code_faithful}`)",
        f"- Backbone: `{cfg.backbone}` (hidden size {model.hidden_size}); max length {cfg.max_length} tokens",
        f"- Labels: {h.num_labels} in {h.num_levels} levels ({' / '.join(str(n) for n in h.level_sizes())})",
        "",
    ]
    if train_config:
        lines += ["## Training", ""]
        if train_config.get("command"):
            lines += ["Reproduce (from the repository root):", "", "```bash", str(train_config["command"]), "```", ""]
        lines += [f"- `{k}`: `{v}`" for k, v in train_config.items() if k != "command"]
        lines.append("")
    if metrics:
        reports = {k: r for k, r in metrics.items() if isinstance(r, dict) and "micro_f1" in r}
        # the hierarchical column only where a report carries it (metrics.json files older than it do not)
        hierarchical = any("hierarchical_f1" in r for r in reports.values())
        columns = ["split", "documents", "micro-F1", "macro-F1"] + (["hierarchical F1"] if hierarchical else [])
        lines += ["## Evaluation", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for split, report in reports.items():
            lines.append(
                f"| {split} | {report.get('n_documents', '–')} | {_pct(report['micro_f1'])} | "
                f"{_pct(report.get('macro_f1'))} |"
                + (f" {_pct(report.get('hierarchical_f1'))} |" if hierarchical else "")
            )
        lines += ["", "Per-depth and per-label figures are in `metrics.json` (fractions 0–1)."]
        if hierarchical:
            lines[-1] += (
                " Hierarchical F1 scores each document's gold and predicted labels together with all their ancestors "
                "(micro-averaged over documents), so a wrong leaf in the right branch earns partial credit."
            )
        lines.append("")
    lines += baseline_section(metrics)
    lines += [
        _LOAD_HEADING,
        "",
        "```python",
        "from hpt_core import Predictor",
        'predictor = Predictor.from_pretrained("path/to/this/directory")',
        'print(predictor.predict(["Some text to classify"])[0].paths)',
        "```",
        "",
        'Or from the command line: `python -m hpt_core predict --model DIR --text "..."`.',
        "",
        "Weights are in `model.safetensors` (no pickle); the label tree is in `hierarchy.json`.",
        "",
        _STORAGE.get(weights, "").format(backbone=cfg.backbone),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def baseline_section(metrics: Mapping[str, Any] | None) -> list[str]:
    """The card's comparison with the frozen-embedding baseline, as markdown lines: empty unless ``metrics`` has a
    ``"sentence_baseline"`` entry (``SentenceBaselineResult.to_dict()``)."""
    baseline = (metrics or {}).get("sentence_baseline")
    if not isinstance(baseline, Mapping):
        return []
    c = baseline.get("c")
    chosen = f"`C` = {c:g} chosen on {baseline.get('chosen_on', 'dev')} macro-F1" if c is not None else "no `C` chosen"
    lines = [
        BASELINE_HEADING,
        "",
        f"The same splits, classified by a cheaper model ({baseline.get('name', 'a frozen-embedding baseline')}): "
        f"mean-pooled embeddings of the first {baseline.get('max_length', '?')} tokens from the frozen "
        f"`{baseline.get('backbone', '?')}` encoder, then a logistic regression over the deepest labels ({chosen}; "
        f"{baseline.get('seconds', '?')} s in all, nothing fine-tuned).",
        "",
    ]
    if baseline.get("note"):
        lines += [str(baseline["note"]), ""]
    rows = [row for row in duel_table(metrics or {}, baseline) if row["depth"] is None]
    if rows:
        lines += [
            "| split | HPT micro-F1 | HPT macro-F1 | baseline micro-F1 | baseline macro-F1 |",
            "|---|---|---|---|---|",
        ]
        for row in rows:
            scores = (row[f"{m}_{a}_f1"] for m in ("hpt", "baseline") for a in ("micro", "macro"))
            lines.append(f"| {row['split']} | " + " | ".join(_pct(v) for v in scores) + " |")
        lines.append("")
    return lines + [f"**Verdict:** {duel_verdict(metrics or {}, baseline)}", ""]


def with_baseline_section(card: str, metrics: Mapping[str, Any] | None) -> str:
    """``card`` (a rendered model card) with its baseline comparison replaced by ``baseline_section(metrics)``: in
    place of an earlier one, else before "How to load", else at the end."""
    lines = card.rstrip("\n").split("\n")
    if BASELINE_HEADING in lines:
        start = lines.index(BASELINE_HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        del lines[start:end]
    else:
        start = lines.index(_LOAD_HEADING) if _LOAD_HEADING in lines else len(lines)
        if start == len(lines) and lines and lines[-1]:
            lines.append("")
            start += 1
    lines[start:start] = baseline_section(metrics)
    return "\n".join(lines).rstrip("\n") + "\n"


_STORAGE = {
    "float32": "Storage: fp32.\n",
    "float16": "Storage: fp16 (loaded back in fp32; scores move by up to a few 1e-3).\n",
    "mixed": "Storage: word embeddings in fp16, everything else in fp32 (loaded back in fp32).\n",
    "float16-delta": (
        "Storage: `float16-delta`. Every backbone weight is stored as its fp16 difference from the backbone file it "
        "was trained from (`{backbone}`, named with its sha256 in `config.json`); the graph, template, `[PRED]` and "
        "label-word weights are fp32. That is half the size of fp32, and since training moves a weight by a few per "
        "cent, rounding the update instead of the weight keeps the scores far closer to fp32 than plain fp16. "
        "Loading adds the backbone's weights back, so that backbone must be present, unchanged: a missing or "
        "changed backbone file is reported by name.\n"
    ),
}
