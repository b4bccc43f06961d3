"""Logs: structlog set up once, at the start of every command.

JSON lines on stdout by default (so ``docker compose logs -f`` is the operator's
console), a colourless console renderer for humans. Events are stable snake_case names
with their context as key/values.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from daemon.settings import LogFormat


def configure_logging(log_format: LogFormat = "json", stream: TextIO | None = None) -> None:
    """Route every structlog logger to ``stream`` (stdout) in ``log_format``."""
    rendering: list[structlog.typing.Processor]
    if log_format == "console":
        rendering = [structlog.dev.ConsoleRenderer(colors=False)]
    else:
        rendering = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
