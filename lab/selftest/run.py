"""`lab selftest`: run the scenario suite against each mutant and print the score.

Each mutant runs in its own pytest session (``--lab-mutant NAME``) on the lab that
is up, restricted to the scenario functions its header names; JUnit and evidence
go to ``artifacts/selftest/<mutant>/``. The table and a JSON copy are written to
``artifacts/selftest/score.md`` / ``score.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from lab.config import LabConfig, load_config
from lab.drivers import REPO_ROOT
from lab.errors import ConfigError, LabFailure
from lab.inventory import write_text_atomic
from lab.lab_ref import down_text, up_command
from lab.lablock import exclusive
from lab.paths import StatePaths
from lab.progress import Progress
from lab.selftest.mutants import Mutant, load_mutants
from lab.selftest.score import Outcome, judge, read_cases, score_table

SCENARIO_FILE = "tests/scenarios/test_scenarios.py"
#: one mutant's whole scenario run (builds included) may take this long
MUTANT_TIMEOUT_S = 1200.0


def select(mutants: tuple[Mutant, ...], names: list[str], quick: bool) -> list[Mutant]:
    """The mutants asked for by name (all when none), or the quick (CI) subset."""
    if names:
        known = {m.name: m for m in mutants}
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError("--mutant", "mutant", f"no mutant named {missing[0]!r}",
                              f"pick from: {', '.join(known)}")
        return [known[n] for n in names]
    return [m for m in mutants if m.quick] if quick else list(mutants)


def pytest_argv(mutant: Mutant, config: Path, workers: int, out: Path) -> list[str]:
    tests = [f"{SCENARIO_FILE}::{name}" for name in mutant.scenarios]
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rN",
            "-n", str(workers), *tests, "--lab-config", str(config),
            "--lab-mutant", mutant.name, f"--junitxml={out / 'junit.xml'}",
            f"--lab-evidence={out / 'evidence'}", f"--lab-run-dir={out / 'run'}"]


def run_one(mutant: Mutant, config: Path, workers: int, out: Path) -> Outcome:
    out.mkdir(parents=True, exist_ok=True)
    (out / "junit.xml").unlink(missing_ok=True)
    t0 = time.monotonic()
    try:
        res = subprocess.run(pytest_argv(mutant, config, workers, out), cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=MUTANT_TIMEOUT_S)
        output = res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        output = f"the scenario run took over {MUTANT_TIMEOUT_S:.0f}s: {exc}"
    write_text_atomic(out / "pytest.log", output)
    tail = output.strip().splitlines()[-1:] or ["(no output)"]
    return judge(mutant, read_cases(out / "junit.xml"), time.monotonic() - t0, tail[0])


def _require_lab(cfg: LabConfig) -> None:
    if not StatePaths(cfg.state_dir).inventory.exists():
        raise LabFailure(f"{down_text(cfg)}: the self-test runs the scenarios on it",
                         hint=f"bring it up with `{up_command(cfg)}`")


def cmd_selftest(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    mutants = select(load_mutants(), args.mutant or [], args.quick)
    if not mutants:
        raise LabFailure("no mutants selected", hint="drivers/*/linux/mutants/*.patch")
    _require_lab(cfg)
    with exclusive(cfg, "selftest", Progress(log=StatePaths(cfg.state_dir).lab_log)):
        return _run_all(cfg, mutants, args)


def _run_all(cfg: LabConfig, mutants: list[Mutant], args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    outcomes: list[Outcome] = []
    for i, mutant in enumerate(mutants, 1):
        print(f"[{i}/{len(mutants)}] {mutant.name} ({mutant.driver}, expect {mutant.expect}): "
              f"{' '.join(mutant.scenarios)}", flush=True)
        outcome = run_one(mutant, cfg.path, args.workers, out / mutant.name)
        outcomes.append(outcome)
        print(f"    {outcome.status}: {outcome.got} in {outcome.seconds:.0f}s", flush=True)
    table = score_table(outcomes)
    print("\n" + table)
    write_text_atomic(out / "score.md", table + "\n")
    write_text_atomic(out / "score.json", json.dumps([{
        "mutant": o.mutant.name, "driver": o.mutant.driver, "breaks": o.mutant.breaks,
        "expected": o.mutant.expect, "got": o.got, "outcome": o.status,
        "evidence": o.evidence, "seconds": round(o.seconds, 1)} for o in outcomes], indent=1))
    return 0 if all(o.ok for o in outcomes) else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("selftest", help="mutation self-test: run the scenarios against each "
                       "mutant of the twins and print the mutation score")
    p.add_argument("--mutant", action="append", metavar="NAME",
                   help="run only this mutant (repeatable; default: all)")
    p.add_argument("--quick", action="store_true",
                   help="only the mutants marked `Quick: yes` (the CI subset)")
    p.add_argument("--workers", type=int, default=4, help="xdist workers per mutant (default 4)")
    p.add_argument("--out", default="artifacts/selftest",
                   help="folder for JUnit, evidence and the score (default artifacts/selftest)")
    p.set_defaults(func=cmd_selftest)
