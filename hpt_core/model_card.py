"""The model card (``README.md``) written into every checkpoint directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpt_core.model import HPTModel

__all__ = ["render_model_card"]


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
        lines += ["## Evaluation", "", "| split | documents | micro-F1 | macro-F1 |", "|---|---|---|---|"]
        for split, report in metrics.items():
            if isinstance(report, dict) and "micro_f1" in report:
                lines.append(
                    f"| {split} | {report.get('n_documents', '–')} | {_pct(report['micro_f1'])} | "
                    f"{_pct(report.get('macro_f1'))} |"
                )
        lines += ["", "Per-depth and per-label figures are in `metrics.json` (fractions 0–1).", ""]
    lines += [
        "## How to load",
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
