"""Run history (lab/history.py) on a real SQLite file: record, last N, trends, flakes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lab import history
from lab.cli import main
from lab.errors import LabFailure

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def junit(tmp: Path, name: str, cases: dict[str, tuple[str, float | None]],
          flakes: dict[str, str] | None = None) -> Path:
    """A JUnit file as pytest writes it, one testcase per ``name: (verdict, MB/s)``;
    ``flakes``: the ``flake`` property of re-run tests (lab/flake.py)."""
    body = []
    for test, (verdict, mbps) in cases.items():
        props = f'<property name="verdict" value="{verdict}"/>'
        if test in (flakes or {}):
            props += f'<property name="flake" value="{(flakes or {})[test]}"/>'
        if mbps is not None:
            props += f'<property name="throughput_MBps" value="{mbps:.2f}"/>'
        failure = "" if verdict in ("pass", "skipped") else f'<failure message="{verdict}"/>'
        skipped = '<skipped message="no lab"/>' if verdict == "skipped" else ""
        body.append(f'<testcase classname="tests.scenarios.test_scenarios" name="{test}" '
                    f'time="12.5"><properties>{props}</properties>{failure}{skipped}</testcase>')
    path = tmp / f"{name}.xml"
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest" '
                    f'timestamp="{name}">{"".join(body)}</testsuite></testsuites>')
    return path


def record(db: Path, path: Path, revision: str, minutes: int) -> str:
    run_id, new = history.record(db, path, revision, "cfg1", T0 + timedelta(minutes=minutes))
    assert new
    return run_id


def test_record_is_one_run_and_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    path = junit(tmp_path, "r1", {"test_a": ("pass", 40.0), "test_b": ("driver hung", None)})
    run_id = record(db, path, "abc", 0)
    assert history.record(db, path, "abc", "cfg1") == (run_id, False)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
        rows = conn.execute("SELECT test, verdict, duration, throughput FROM results "
                            "ORDER BY test").fetchall()
    assert rows == [("tests.scenarios.test_scenarios::test_a", "pass", 12.5, 40.0),
                    ("tests.scenarios.test_scenarios::test_b", "driver hung", 12.5, None)]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    record(db, junit(tmp_path, "r1", {"test_a": ("pass", 40.0)}), "abc", 0)
    with pytest.raises(RuntimeError), history.transaction(db) as conn:
        conn.execute("INSERT INTO runs VALUES ('x', 't', 'rev', 'cfg', 'j')")
        raise RuntimeError("interrupted between the run and its results")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT run_id FROM runs").fetchall() != [("x",)]
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)


def test_broken_junit_records_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuites><testcase")
    with pytest.raises(LabFailure):
        history.record(tmp_path / "h.sqlite", bad, "abc", "cfg1")
    assert not (tmp_path / "h.sqlite").exists()


def test_pass_rate_trend_and_flakes(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    runs: list[tuple[str, dict[str, tuple[str, float | None]]]] = [
        ("abc", {"test_a": ("pass", 40.0), "test_b": ("pass", None)}),
        ("abc", {"test_a": ("pass", 44.0), "test_b": ("driver hung", None)}),
        ("def", {"test_a": ("lab failed", None), "test_b": ("driver hung", None)}),
        ("def", {"test_a": ("pass", 50.0), "test_c": ("skipped", None)})]
    for i, (rev, cases) in enumerate(runs):
        record(db, junit(tmp_path, f"r{i}", cases), rev, i)
    by_test = {t.test.rsplit("::", 1)[1]: t for t in
               history.summarize(history.last_runs(db, 10))}
    a, b, c = by_test["test_a"], by_test["test_b"], by_test["test_c"]
    assert a.verdicts == ("pass", "pass", "lab failed", "pass")
    assert a.pass_rate == pytest.approx(0.75) and a.throughputs == (40.0, 44.0, 50.0)
    assert a.flaky_on == ("def@cfg1",)  # lab failed then pass on def
    assert b.verdicts == ("pass", "driver hung", "driver hung", None)
    assert b.flaky_on == ("abc@cfg1",)
    assert c.ran == 0 and c.pass_rate is None and c.flaky_on == ()
    last2 = history.summarize(history.last_runs(db, 2))
    assert {t.test.rsplit("::", 1)[1]: t.verdicts for t in last2}["test_b"] == \
        ("driver hung", None)


def test_trend_text() -> None:
    assert history.trend([]) == ""
    assert history.trend([40.0, 44.0, 50.0]) == "50.0 ▁▃█ +25%"
    assert history.sparkline([3.0, 3.0]) == "▄▄"


def test_cli_records_and_shows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    first = junit(tmp_path, "r1", {"test_a": ("pass", 40.0)})
    second = junit(tmp_path, "r2", {"test_a": ("driver failed", None)})
    for path in (first, second):
        assert main(["history", "--db", str(db), "--record", str(path)]) == 0
    assert main(["history", "--db", str(db), "--last", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count("recorded in") == 2
    assert "?=failed without a verdict" in out  # every letter the table can show is explained
    row = next(line for line in out.splitlines() if "test_a" in line)
    assert row.split()[1:4] == ["2", "50%", "PF"]
    assert "flaky on" in row  # same revision (this checkout), pass then driver failed


def test_concurrent_recorders_both_land(tmp_path: Path) -> None:
    """Two processes recording at once (two labs finishing together) queue, none is lost."""
    db = tmp_path / "h.sqlite"
    paths = [junit(tmp_path, f"p{i}", {f"test_{i}": ("pass", 1.0)}) for i in range(2)]
    code = ("import sys; from pathlib import Path; from lab import history; "
            "history.record(Path(sys.argv[1]), Path(sys.argv[2]), 'rev', 'cfg')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(p)]) for p in paths]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert len({r.run.run_id for r in history.last_runs(db, 10)}) == 2


def test_git_revision_tells_edited_trees_apart(tmp_path: Path) -> None:
    from lab.history_cli import git_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c",
                        "user.email=t@t", *args], check=True, capture_output=True, timeout=30)

    assert git_revision(tmp_path) == "unknown"
    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    clean = git_revision(tmp_path)
    assert len(clean) == 12 and "+" not in clean
    (tmp_path / "f").write_text("2")
    first = git_revision(tmp_path)
    (tmp_path / "f").write_text("3")
    assert first.startswith(clean + "+dirty-") and git_revision(tmp_path) != first


def test_config_hash_ignores_where_the_file_is(tmp_path: Path) -> None:
    from lab.config import load_config
    from lab.history_cli import config_hash

    text = '[lab]\nname = "h1"\nstate_dir = "var/h1"\n'
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "lab.toml").write_text(text)
    a, b = (config_hash(load_config(tmp_path / s / "lab.toml")) for s in ("a", "b"))
    assert a == b
    (tmp_path / "b" / "lab.toml").write_text(text.replace("h1", "h2"))
    assert config_hash(load_config(tmp_path / "b" / "lab.toml")) != a


#: The first version of the schema (before the flake column): databases written then.
OLD_SCHEMA = (
    "CREATE TABLE runs (run_id TEXT PRIMARY KEY, time TEXT NOT NULL, "
    "revision TEXT NOT NULL, config_hash TEXT NOT NULL, junit TEXT NOT NULL)",
    "CREATE TABLE results (run_id TEXT NOT NULL REFERENCES runs(run_id), "
    "test TEXT NOT NULL, verdict TEXT NOT NULL, duration REAL NOT NULL, throughput REAL)",
    "INSERT INTO runs VALUES ('old1', '2025-12-31T00:00:00+00:00', 'abc', 'cfg1', 'j')",
    "INSERT INTO results VALUES ('old1', 'tests.scenarios.test_scenarios::test_a', "
    "'driver hung', 3.0, NULL)",
)


def test_the_flake_class_is_stored_per_test_per_run_and_flagged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    runs: list[tuple[dict[str, tuple[str, float | None]], dict[str, str]]] = [
        ({"test_a": ("pass", None), "test_b": ("driver hung", None)},
         {"test_a": "flaky", "test_b": "consistent"}),
        ({"test_a": ("pass", None), "test_b": ("driver hung", None)}, {"test_b": "consistent"}),
        ({"test_a": ("pass", None), "test_b": ("driver hung", None)}, {})]
    for i, (cases, flakes) in enumerate(runs):
        record(db, junit(tmp_path, f"r{i}", cases, flakes), f"rev{i}", i)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT test, flake FROM results JOIN runs USING (run_id) "
                              "ORDER BY time, test").fetchall()
    assert [f for _, f in stored] == ["flaky", "consistent", None, "consistent", None, None]
    by_test = {t.test.rsplit("::", 1)[1]: t for t in
               history.summarize(history.last_runs(db, 10))}
    a, b = by_test["test_a"], by_test["test_b"]
    assert a.flakes == ("flaky", None, None) and a.flaky_reruns == 1
    assert b.flakes == ("consistent", "consistent", None) and b.flaky_reruns == 0
    assert a.flaky_on == b.flaky_on == ()  # one run per revision: no verdict disagreement
    assert history.flaky_text(a) == "flaky on re-run in 1 of 3 runs"
    assert history.flaky_text(b) == ""
    # The flaky run falls out of the window: the flag goes with it.
    assert history.summarize(history.last_runs(db, 2))[0].flaky_reruns == 0
    assert main(["history", "--db", str(db), "--last", "3"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
            if line.startswith("test_scenarios::")}
    assert rows["test_scenarios::test_a"].endswith("flaky on re-run in 1 of 3 runs")
    assert "flaky" not in rows["test_scenarios::test_b"]


def test_both_flags_side_by_side(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    record(db, junit(tmp_path, "r0", {"test_a": ("driver hung", None)}), "abc", 0)
    record(db, junit(tmp_path, "r1", {"test_a": ("pass", None)}, {"test_a": "flaky"}),
           "abc", 1)
    (a,) = history.summarize(history.last_runs(db, 10))
    assert history.flaky_text(a) == "flaky on re-run in 1 of 2 runs; flaky on abc@cfg1"


def test_a_database_from_before_the_flake_column_stays_readable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        for statement in OLD_SCHEMA:
            conn.execute(statement)
    (old,) = history.last_runs(db, 10)  # read-only: no column added yet
    assert (old.run.run_id, old.verdict, old.flake) == ("old1", "driver hung", None)
    with sqlite3.connect(db) as conn:
        assert "flake" not in {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    record(db, junit(tmp_path, "r1", {"test_a": ("pass", 40.0)}, {"test_a": "flaky"}),
           "abc", 0)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_id, verdict, flake FROM results ORDER BY rowid")
        assert [(r[1], r[2]) for r in rows] == [("driver hung", None), ("pass", "flaky")]
    (a,) = history.summarize(history.last_runs(db, 10))
    assert a.verdicts == ("driver hung", "pass") and a.flakes == (None, "flaky")
    assert a.flaky_on == ("abc@cfg1",)
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "old1" in out and "flaky on re-run in 1 of 2 runs; flaky on abc@cfg1" in out
