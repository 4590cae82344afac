"""Serving the app: ``hpt-studio app`` and the Spaces entry point ``app.py`` both come here."""

from __future__ import annotations

import os

from .config import AppConfig

__all__ = ["serve", "server_host"]

CONCURRENCY = 4  # events Gradio runs at once (the models serialise their own work)


def server_host() -> str:
    """``$GRADIO_SERVER_NAME``, else every interface on Spaces (``$SPACE_ID``) and only this machine elsewhere."""
    return os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")


def serve(config: AppConfig | None = None, host: str | None = None, port: int | None = None) -> None:
    """Build the app for ``config`` and serve it until interrupted (blocks)."""
    from . import build_demo, launch_options

    config = config or AppConfig()
    demo = build_demo(config)
    demo.queue(default_concurrency_limit=CONCURRENCY).launch(
        server_name=host or server_host(), server_port=port, **launch_options(config)
    )
