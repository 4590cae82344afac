"""The architecture's one hard line: data flows UI → app/ → hpt_core/, never back; no tensors in app/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_hpt_core_never_imports_the_ui() -> None:
    code = (
        "import sys, hpt_core, hpt_core.cli, hpt_core.finetune, hpt_core.predict, hpt_core.explain\n"
        "bad = [m for m in ('gradio', 'plotly', 'app') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_app_has_no_tensor_code() -> None:
    for path in sorted((ROOT / "app").rglob("*.py")) + [ROOT / "app.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "torch" or n.startswith("torch.") for n in names), f"{path} imports torch"
