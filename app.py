"""Hugging Face Spaces entry point: ``python app.py`` serves HPT Studio on http://127.0.0.1:7860."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app import build_demo, launch_options  # noqa: E402
from app.config import AppConfig  # noqa: E402

config = AppConfig()
demo = build_demo(config)

if __name__ == "__main__":
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    demo.queue(default_concurrency_limit=4).launch(server_name=host, **launch_options(config))
