"""Hugging Face Spaces entry point: ``python app.py`` serves HPT Studio on http://127.0.0.1:7860 (``hpt-studio app``
does the same once the package is installed)."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app import build_demo, launch_options  # noqa: E402
from app.config import AppConfig  # noqa: E402
from app.serve import CONCURRENCY, server_host  # noqa: E402

config = AppConfig()
demo = build_demo(config)  # module level: Gradio's reload mode and Spaces look for `demo`

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=CONCURRENCY).launch(server_name=server_host(), **launch_options(config))
