"""The nightly workflow parses, runs on a schedule, and calls only make targets that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from make_targets import targets

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def triggers() -> dict[str, Any]:
    data = workflow()
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert isinstance(on, dict), "the workflow has no `on:` mapping"
    return on


def run_lines() -> list[str]:
    lines = []
    for job in workflow()["jobs"].values():
        for step in job["steps"]:
            lines += str(step.get("run", "")).splitlines()
    return lines


def test_it_runs_nightly_and_on_demand() -> None:
    on = triggers()
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons and all(len(c.split()) == 5 for c in crons)
    assert "workflow_dispatch" in on


def test_every_make_target_it_calls_exists() -> None:
    called = {m.group(1) for line in run_lines()
              for m in re.finditer(r"\bmake\s+(?:-\S+\s+)*([a-z][\w-]*)", line)}
    assert {"setup", "lab", "lab-down"} <= called
    assert sorted(called - targets()) == []


def test_matrix_covers_both_lab_configs_and_they_exist() -> None:
    job = workflow()["jobs"]["lab"]
    configs = [entry["config"] for entry in job["strategy"]["matrix"]["include"]]
    assert configs == ["lab.toml", "images/linux-micro/lab-e1000e.toml"]
    assert all((ROOT / c).is_file() for c in configs)
    assert "kvm" in job["runs-on"] and "self-hosted" in job["runs-on"]


def test_teardown_and_uploads_run_whatever_happened() -> None:
    steps = workflow()["jobs"]["lab"]["steps"]
    down = [s for s in steps if "make lab-down" in str(s.get("run", ""))]
    assert down and all(s.get("if") == "always()" for s in down)
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0].get("if") == "always()"
    assert "artifacts/*/runs/" in upload[0]["with"]["path"]


def test_the_history_database_lives_outside_the_workspace() -> None:
    lines = run_lines()
    assert any("RUNNER_TOOL_CACHE" in line and "HISTORY_DB=" in line for line in lines)
    assert any(line.startswith("make lab ") and "HISTORY_DB=$HISTORY_DB" in line
               for line in lines)
