"""What every stage script shares: logging to the rule's log, and one clear line on bad input or a failed tool."""

from __future__ import annotations

import argparse
import errno
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from vitudip.external_tools import ToolError
from vitudip.io.genotype_files import GenotypeInput


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr, which the workflow sends to the rule's log file."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_cli(body: Callable[[], None]) -> None:
    """Run a stage; a bad-input or external-tool error ends it with one line and exit status 1, not a traceback.

    ``ValueError`` (``ConfigError`` is one), missing or unreadable files and a full disk are input problems, and a
    ``ToolError`` (plink2 or regenie missing or failing) quotes the tool's own log, which
    says more than our stack; anything else is a bug and keeps its traceback.
    """
    setup_logging()
    try:
        body()
    except (ValueError, FileNotFoundError, ToolError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except PermissionError as err:
        # a file or folder of the user's that this account may not read or write: theirs to fix, not a bug
        print(f"error: permission denied: {err.filename or err}: give this account access to it (or name "
              "another file), and rerun", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: {full_disk_message(err)}", file=sys.stderr)
        sys.exit(1)


def full_disk_message(err: OSError) -> str:
    """One line for a write that found its disk (or quota) full: the folder, and what is free there now."""
    path = Path(err.filename) if err.filename else Path.cwd()
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path.cwd())
    free = shutil.disk_usage(folder).free
    return (f"{'disk quota exceeded' if err.errno == errno.EDQUOT else 'no space left on the device'} writing "
            f"{path} (folder {folder}, {free / 1e9:.2f} GB free now): free space "
            "there, or point `results` at a larger file system, and rerun")


def add_genotype_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--genotypes`` and ``--genotype-samples``: the study's genotype input, as the config names it."""
    parser.add_argument("--genotypes", required=True, help="inputs.genotypes: a prefix, or one with {chromosome}")
    parser.add_argument("--genotype-samples", help="inputs.genotype_samples: a BGEN's .sample named apart")


def genotype_input(args: argparse.Namespace) -> GenotypeInput:
    """The genotype input of arguments added by :func:`add_genotype_input_arguments`."""
    return GenotypeInput(args.genotypes, args.genotype_samples)
