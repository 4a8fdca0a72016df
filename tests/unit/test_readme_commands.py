"""Every command the README tells a user to run names things that exist.

test_make_help checks the targets table; this checks the commands themselves, in code
blocks and inline code: each ``make TARGET VAR=...`` names a target of the make files
and variables they use, each ``lab [--config X] COMMAND --flag`` a sub-command and
flags of the real `lab` parser (nested: ``lab image windows --iso``), each pytest
option ``--lab-...`` one the Driver Lab plugin registers, and each test path of a
pytest command a path of the tree. Commands that need a lab are only checked here;
the README walk that ran the others is in the issue's report.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from functools import cache

from make_targets import ROOT, make_files, targets

from lab.cli import build_parser

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`")
#: A lab command: optional venv path, optional --config/-c, then the sub-command.
LAB = re.compile(r"(?:^|&&\s*|\$\s+)(?:\.venv/bin/)?lab((?:\s+(?:--config|-c)\s+\S+)?"
                 r"\s+[a-z][\w-]*.*)$")
MAKE = re.compile(r"(?:^|&&\s*)make\s+([A-Za-z][\w-]*(?:\s+[A-Z][A-Z_]*=\S*)*)")
#: Inline spans that start like a lab command but quote a message the lab prints.
MESSAGES = ("lab dlab is ", "lab failed")


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def command_lines() -> list[str]:
    """Every command-like line: fenced lines (continuations joined, comments cut) and
    inline code spans (whitespace folded)."""
    text = readme()
    lines: list[str] = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(re.sub(r"\s+#\s.*$", "", line).split())
            lines.append(line.removeprefix("$ "))
    for span in INLINE.findall(FENCE.sub("", text)):
        lines.append(" ".join(span.split()))
    return lines


def lab_commands() -> list[str]:
    found = []
    for line in command_lines():
        for part in line.split("&&"):
            match = LAB.search(part.strip())
            if match and not part.strip().startswith(MESSAGES):
                found.append(match.group(1).strip())
    return found


def make_commands() -> list[str]:
    return [m.group(1) for line in command_lines() for m in MAKE.finditer(line)]


def sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def lab_problems(command: str) -> list[str]:
    """What does not exist in ``lab <command>`` (sub-commands, flags)."""
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    while words and words[0] in ("--config", "-c"):
        words = words[2:]
    parser = build_parser()
    problems: list[str] = []
    while words and (subs := sub_parsers(parser)):
        if words[0] not in subs:
            return [f"`lab {command}`: no sub-command {words[0]!r} (has {sorted(subs)})"]
        parser, words = subs[words[0]], words[1:]
    plain = [a for a in parser._actions if not a.option_strings]
    before_rest = len(plain) - 1 if plain and plain[-1].nargs == argparse.REMAINDER else None
    for word in words:
        flag = word.split("=", 1)[0]
        if not flag.startswith("-"):
            if before_rest is not None and (before_rest := before_rest - 1) < 0:
                break  # the rest is the guest's command line (lab ssh VM CMD...)
        elif flag not in flags(parser):
            problems.append(f"`lab {command}`: no option {flag}")
    return problems


@cache
def pytest_help() -> str:
    return subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=120).stdout


def make_variables() -> set[str]:
    text = "\n".join(path.read_text() for path in make_files())
    return set(re.findall(r"\$[({]([A-Z][A-Z_]*)[)}]", text))


def test_the_readme_walk_finds_the_commands() -> None:
    labs, makes = lab_commands(), make_commands()
    assert "--config lab-windows.toml image windows --iso ~/iso/ws2022.iso --virtio-win " \
           "~/iso/virtio-win.iso --edition \"Windows Server 2022 SERVERSTANDARD\"" in labs
    assert "console vm1 --follow [--for SECONDS]" in labs and "history --last 5" in labs
    assert "lab CONFIG=images/linux-micro/lab-e1000e.toml" in makes
    assert lab_problems("image windows --isos x") == ["`lab image windows --isos x`: "
                                                      "no option --isos"]
    assert lab_problems("ssh vm1 uname -r") == [] and lab_problems("ssh -x vm1") != []
    assert lab_problems("imgs check")[0].startswith("`lab imgs check`: no sub-command 'imgs'")


def test_every_lab_command_of_the_readme_exists() -> None:
    problems = [p for command in lab_commands() for p in lab_problems(command)]
    assert problems == []


def test_every_make_command_of_the_readme_exists() -> None:
    known, variables = targets(), make_variables()
    problems = []
    for command in make_commands():
        target, *assignments = command.split()
        if target not in known:
            problems.append(f"`make {command}`: no target {target}")
        problems += [f"`make {command}`: the make files never use {a.split('=')[0]}"
                     for a in assignments if a.split("=")[0] not in variables]
    assert problems == []


def test_every_pytest_option_and_path_of_the_readme_exists() -> None:
    text = readme()
    options = set(re.findall(r"(?<![\w-])(--lab-[a-z-]+)", text))
    assert {"--lab-config", "--lab-rerun-failed", "--lab-skip-if-down"} <= options
    missing = sorted(o for o in options if not re.search(rf"^\s+{o}\b", pytest_help(), re.M))
    assert missing == [], "pytest options the README names but the plugin lacks"
    paths = {m for line in command_lines() if " pytest" in f" {line}"
             for m in re.findall(r"(?<!\S)(tests/[\w/.]+)", line)}
    assert "tests/scenarios" in paths
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


def test_every_variable_the_readme_sets_is_read_somewhere() -> None:
    """``WORKERS=4``, ``HISTORY_DB=PATH``, ``LAB_PROGRESS=plain``: a make variable of the
    make files, or an environment variable the lab's code reads."""
    names = {m.group(1) for line in command_lines()
             for m in re.finditer(r"(?:^|\s)([A-Z][A-Z0-9_]*)=", line)}
    assert {"WORKERS", "HISTORY_DB", "SCENARIO_ARGS", "LAB_PROGRESS"} <= names
    code = "\n".join(p.read_text() for p in sorted((ROOT / "lab").rglob("*.py")))
    tools = {"W", "WINEDEBUG"}  # kbuild's warning level, Wine's debug channels
    unread = sorted(n for n in names - make_variables() - tools if f'"{n}"' not in code)
    assert unread == [], "variables the README sets that nothing reads"


def test_every_source_path_the_readme_names_exists() -> None:
    """Paths in inline code under the tree's own folders (``lab/flake.py``,
    ``tests/unit/test_history.py``, ``drivers/events.txt``); ``var/`` and ``artifacts/``
    hold what runs make and are not checked, nor patterns (``<lab>``, ``*``, ``{a,b}``)."""
    folders = {p.name for p in ROOT.iterdir() if p.is_dir()} - {"var", "artifacts"}
    spans = INLINE.findall(FENCE.sub("", readme()))
    paths = {tok for span in spans for tok in re.findall(r"[\w.+-]+(?:/[\w.*<>{},+-]+)+/?", span)
             if tok.split("/")[0] in folders and not set(tok) & set("<>{}*")}
    assert {"lab/flake.py", "tests/unit/test_history.py", "drivers/events.txt"} <= paths
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
