"""`lab history`: record a run (``--record JUNIT``) or show the last runs (``--last N``)."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from lab import history, runs
from lab.config import LabConfig, load_config
from lab.paths import StatePaths

GIT_TIMEOUT_S = 10.0
#: ``--record`` without a file: the latest run folder of the lab (lab.runs).
LATEST_RUN = Path("<latest run>")
#: The checkout the lab and the drivers under test come from (lab/ and drivers/ live there).
SOURCE_TREE = Path(__file__).resolve().parent.parent


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="run history: pass rate, throughput trend, flaky tests")
    p.add_argument("--record", metavar="JUNIT", type=Path, nargs="?", const=LATEST_RUN,
                   help="append this run's JUnit XML to the history (one transaction); "
                        "no JUNIT: the latest run of the lab (artifacts/<lab>/latest)")
    p.add_argument("--last", metavar="N", type=int, default=10,
                   help="runs to show (default: 10)")
    p.add_argument("--db", type=Path, default=None,
                   help="history database (default: history.sqlite in the lab's state dir)")
    p.set_defaults(func=cmd_history)


def git_revision(where: Path) -> str:
    """The checked-out commit, or ``unknown``; with uncommitted changes to tracked files
    ``+dirty-<digest of the diff>``, so edited trees never count as the same revision."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True,
                              text=True, check=True, timeout=GIT_TIMEOUT_S).stdout.strip()
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        diff = git("diff", "--no-ext-diff", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f"+dirty-{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else "")


def config_hash(cfg: LabConfig) -> str:
    """The effective configuration's digest (where the file lives does not count)."""
    data = dataclasses.asdict(cfg)
    data.pop("path", None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cmd_history(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    db: Path = args.db or StatePaths(cfg.state_dir).history
    if args.record is not None:
        return _record(cfg, db, args.record)
    results = history.last_runs(db, max(args.last, 1))
    runs = list(dict.fromkeys(r.run for r in results))
    if not runs:
        print(f"history: no runs recorded in {db} (make lab records each run)")
        return 0
    revisions = ", ".join(dict.fromkeys(r.revision for r in runs))
    print(f"history: last {len(runs)} runs from {db} (revisions: {revisions})")
    print(history.runs_table(results))
    print(f"VERDICTS: one letter per run, oldest first ({_legend()})\n")
    print(history.history_table(history.summarize(results)))
    return 0


def _record(cfg: LabConfig, db: Path, junit: Path) -> int:
    """Append one run: the lab's latest run folder, or a JUnit file (a run folder's own
    JUnit is recorded under that run's id and start time)."""
    run = _run_of(junit)
    if junit == LATEST_RUN:
        run = runs.latest_run(Path("artifacts"), cfg.lab.name)
        junit = Path(run.start.junit)
        print(f"history: recording run {run.run_id} of lab {cfg.lab.name} ({junit})")
    when = datetime.fromtimestamp(run.start.started, UTC) if run else None
    run_id, new = history.record(db, junit, git_revision(SOURCE_TREE), config_hash(cfg),
                                 when=when, run_id=run.run_id if run else None)
    print(f"history: run {run_id} {'recorded' if new else 'was already recorded'} in {db}")
    return 0


def _run_of(junit: Path) -> runs.RunRecord | None:
    """The run folder whose JUnit ``junit`` is, if it is one."""
    if junit == LATEST_RUN or not runs.is_lab_run(junit.parent):
        return None
    run = runs.read_run(junit.parent)
    return run if run.start.junit and Path(run.start.junit) == junit.resolve() else None


def _legend() -> str:
    return ", ".join(f"{letter}={verdict}" for verdict, letter in history.LETTERS.items()) \
        + ", .=not in that run"
