"""What every stage script shares: logging to the rule's log, and one clear line on bad input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr, which the workflow sends to the rule's log file."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_cli(body: Callable[[], None]) -> None:
    """Run a stage; a bad-input error ends it with one line and exit status 1, not a traceback.

    ``ValueError`` (``ConfigError`` is one) and missing files are input problems;
    anything else is a bug and keeps its traceback.
    """
    setup_logging()
    try:
        body()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
