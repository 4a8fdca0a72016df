"""The host agent's wire format and zipapp (lab/hostagent_wire.py, lab/hostagent.py).

Real loads on loopback, a real zipapp run by the system's python3 in isolated mode
(no venv: what a hypervisor host has). The namespace-host test
(tests/lab/test_hostagent.py) runs it over SSH.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from lab.errors import (
    DeadlineExceeded,
    DriverFailure,
    DriverHang,
    LabError,
    LabFailure,
    NetworkBroken,
    OutsideLab,
    VmPaused,
)
from lab.hostagent import build_agent
from lab.hostagent_wire import (
    WireError,
    carries_from_json,
    closed_from_json,
    decode_error,
    encode_error,
    outcome_from_json,
    ports_from_json,
    probe_from_json,
    probe_to_json,
    result_from_json,
    result_to_json,
    spec_from_json,
    spec_to_json,
)
from lab.l2probe import ProbeReply
from lab.load import ErrorClass, LoadConfigError, LoadSpec, Mode, Target, run_load

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin")


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server: port P echoes, connections are served in threads."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # reset: a client killed mid-load
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", [Mode.STREAM, Mode.PING])
def test_a_load_result_survives_json(echo_port: int, mode: Mode) -> None:
    """Every field, errors included (a refused target), comes back equal."""
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port), Target("127.0.0.1", _closed_port())),
                    mode=mode, connections=2, duration=0.3, progress=False)
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))) == spec
    result = run_load(spec)
    assert result.bytes_echoed > 0
    assert {e.cls for e in result.errors} == {ErrorClass.REFUSED}
    back = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert back == result
    assert back.latency == result.latency and (mode is Mode.STREAM) == (back.latency is None)


def test_a_probe_reply_survives_json() -> None:
    reply = ProbeReply(mac="52:54:00:00:00:01", ifindex=7, rtt_s=0.000123)
    assert probe_from_json(json.loads(json.dumps(probe_to_json(reply)))) == reply
    assert probe_from_json(probe_to_json(None)) is None


@pytest.mark.parametrize("err, cls", [
    (LabFailure("x", hint="h"), LabFailure),
    (OutsideLab("outside"), OutsideLab),
    (DeadlineExceeded("the load", 12.0, last_seen="3 lanes"), DeadlineExceeded),
    (LoadConfigError("bad port"), LoadConfigError),
    (DriverFailure("corrupt byte"), DriverFailure),
    (DriverHang("hung"), DriverHang),
    (NetworkBroken("unreachable"), DriverFailure),  # not registered: its registered base
    (VmPaused("paused"), LabFailure),
])
def test_an_error_keeps_its_class_across_the_wire(err: LabError, cls: type[LabError]) -> None:
    back = decode_error(json.loads(json.dumps(encode_error(err))), "host h2: ")
    assert type(back) is cls
    assert back.summary == f"host h2: {err.summary}"
    assert back.hint == err.hint
    if isinstance(err, DeadlineExceeded):
        assert isinstance(back, DeadlineExceeded)
        assert (back.what, back.seconds) == (err.what, err.seconds)


@pytest.mark.parametrize("doc", [
    {"class": "SystemExit", "summary": "x"},  # never a class outside the registry
    {"class": "LabFailure"},
    {"class": "LabFailure", "summary": 3},
    "LabFailure",
])
def test_a_malformed_error_is_refused(doc: object) -> None:
    with pytest.raises(WireError):
        decode_error(doc)


def test_a_malformed_result_is_refused(echo_port: int) -> None:
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port),), duration=0.2, progress=False)
    good = result_to_json(run_load(spec))
    for broken in ({}, {**good, "mode": "warp"}, {**good, "connections": [{"conn": "0"}]},
                   {**good, "duration": "1"}, {**good, "timeline": [{"per_target": ["x"]}]}):
        with pytest.raises(WireError):
            result_from_json(broken)


@pytest.mark.parametrize(("decode", "doc"), [
    (ports_from_json, {"ports": [0]}), (ports_from_json, {"ports": ["22"]}),
    (ports_from_json, {"ports": [True]}), (ports_from_json, {}),
    (outcome_from_json, {"outcome": "lost"}), (outcome_from_json, {"outcome": 1}),
    (closed_from_json, {"closed": "3"}), (closed_from_json, {"closed": False}),
    (carries_from_json, {"carries": "yes"}), (carries_from_json, {"carries": 1}),
    (carries_from_json, None)])
def test_a_malformed_clients_answer_is_refused(decode: Any, doc: object) -> None:
    with pytest.raises(WireError):
        decode(doc)


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3")
def test_a_serving_agent_holds_clients_between_requests(tmp_path: Path, echo_port: int) -> None:
    """clients-open, then echoes on those very connections in later requests, then
    clients-close; a request for clients when none are open is a bad request."""
    bundle = build_agent(tmp_path)
    opened, echoed, again, closed = _serve_all(bundle.path, [
        {"op": "clients-open", "addresses": ["127.0.0.1"] * 3, "port": echo_port,
         "who": "wskecho", "timeout": 5.0},
        {"op": "clients-echo", "index": 2, "payload": "held\n", "stall_s": 5.0},
        {"op": "clients-echo", "index": 0, "payload": "caf\u00e9\n", "stall_s": 5.0},
        {"op": "clients-close"}])
    ports = ports_from_json(opened["result"])
    assert len(set(ports)) == 3
    assert outcome_from_json(echoed["result"]) == outcome_from_json(again["result"]) == "echoed"
    assert closed_from_json(closed["result"]) == 3
    refused = _serve_all(bundle.path, [{"op": "clients-open", "addresses": ["127.0.0.1"],
                                        "port": 1, "who": "wskecho", "timeout": 2.0}])
    assert type(err := decode_error(refused[0]["error"])) is DriverFailure
    assert err.summary.startswith("wskecho: client 1 of 1 could not connect to 127.0.0.1")
    assert SYSTEM_PYTHON is not None
    none_open = subprocess.run([SYSTEM_PYTHON, "-I", str(bundle.path), "serve"],
                               input='{"op": "clients-echo", "index": 0, "payload": "x", '
                                     '"stall_s": 1}\n', capture_output=True, text=True,
                               timeout=30)
    assert none_open.returncode == 64 and "no clients are open" in none_open.stderr


def test_the_zipapp_holds_only_the_instruments(tmp_path: Path) -> None:
    bundle = build_agent(tmp_path)
    assert build_agent(tmp_path) == bundle  # built once per content hash
    names = zipfile.ZipFile(bundle.path).namelist()
    assert "__main__.py" in names and "lab/hostagent_main.py" in names
    assert "lab/l2probe.py" in names and "lab/load/engine.py" in names
    for heavy in ("lab/vm.py", "lab/hypervisor.py", "lab/gateway.py", "lab/hostagent.py"):
        assert heavy not in names
    assert not [n for n in names if n.startswith(("paramiko", "libvirt", "fabric"))]
    rebuilt = build_agent(tmp_path / "again")
    assert rebuilt.hash == bundle.hash
    assert rebuilt.path.read_bytes() == bundle.path.read_bytes()  # reproducible


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3")
def test_the_zipapp_runs_on_a_bare_python(tmp_path: Path, echo_port: int) -> None:
    """`python3 -I agent.pyz load`: no venv, no site-packages; one JSON line out."""
    assert SYSTEM_PYTHON is not None
    bundle = build_agent(tmp_path)
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port),), connections=2,
                    duration=None, bytes_per_connection=1 << 20, progress=False)
    proc = subprocess.Popen([SYSTEM_PYTHON, "-I", str(bundle.path), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps({"spec": spec_to_json(spec)}).encode() + b"\n")
    proc.stdin.flush()  # stdin stays open: its EOF would stop the agent
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.wait(timeout=30) == 0, err
    proc.stdin.close()
    doc = json.loads(out)
    assert doc["ok"] is True
    result = result_from_json(doc["result"])
    assert result.ok and result.bytes_echoed == 2 << 20


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3")
def test_a_serving_agent_answers_line_by_line_until_eof(tmp_path: Path, echo_port: int) -> None:
    """`agent.pyz serve`: one answer line per request line, errors as documents, a bad
    request ends it (non-zero, the reason on stderr), EOF while idle ends it cleanly."""
    assert SYSTEM_PYTHON is not None
    bundle = build_agent(tmp_path)
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port),), duration=0.2, progress=False)
    requests = [{"op": "load", "spec": spec_to_json(spec)},
                {"op": "l2probe", "bridge": "dlnosuch0", "mac": "02:00:00:00:00:01",
                 "timeout": 0.1},
                {"op": "load", "spec": {**spec_to_json(spec), "connections": 0}}]
    answers = _serve_all(bundle.path, requests)
    first, second, third = answers
    assert result_from_json(first["result"]).ok
    assert type(decode_error(second["error"])) is LabFailure
    assert type(decode_error(third["error"])) is LoadConfigError
    bad = subprocess.run([SYSTEM_PYTHON, "-I", str(bundle.path), "serve"],
                         input='{"op": "reboot"}\n', capture_output=True, text=True, timeout=30)
    assert bad.returncode == 64 and "unknown op 'reboot'" in bad.stderr


def _own_address() -> tuple[str, str]:
    """A global IPv4 address of this host on an interface that is not a bridge."""
    bridges = {line.split()[1].rstrip(":").split("@")[0] for line in subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True,
        check=True).stdout.splitlines()}
    for line in subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        words = line.split()
        if words[1] not in bridges:
            return words[3].split("/")[0], words[1]
    pytest.skip("no global IPv4 address on an interface that is not a bridge")


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3")
def test_the_agent_refuses_a_target_outside_the_hosts_bridges(
        tmp_path: Path, echo_port: int) -> None:
    """The route guard runs in the agent: an address of this host's own that is on no
    bridge (traffic to it, if the guard let it go, never leaves the host) and a lab bridge
    that is no bridge here are refused as OutsideLab, one line; loopback is served."""
    assert SYSTEM_PYTHON is not None
    own, dev = _own_address()
    bundle = build_agent(tmp_path)
    assert "lab/route_guard.py" in zipfile.ZipFile(bundle.path).namelist()
    far = LoadSpec(targets=(Target(own, echo_port),), duration=0.2, progress=False)
    near = LoadSpec(targets=(Target("127.0.0.1", echo_port),), duration=0.2, progress=False)
    requests = [{"op": "load", "spec": spec_to_json(far)},
                {"op": "load", "spec": spec_to_json(far), "lab": "dlu"},
                {"op": "l2probe", "bridge": "lo", "mac": "02:00:00:00:00:01",
                 "timeout": 0.1, "lab": "dlu"},
                {"op": "load", "spec": spec_to_json(near), "lab": "dlu"}]
    answers = _serve_all(bundle.path, requests)
    *refused, served = answers
    errors = [decode_error(doc["error"]) for doc in refused]
    assert [type(e) for e in errors] == [OutsideLab] * 3
    assert errors[0].summary.startswith(f"echo load to {own}: {own} is routed via {dev} "
                                        "on this host, not a bridge of this host")
    assert "not a bridge of lab dlu" in errors[1].summary
    assert errors[2].summary.startswith("L2 probe through lo: lo is not a bridge of lab dlu")
    assert all("\n" not in e.summary for e in errors)
    assert result_from_json(served["result"]).ok


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no /usr/bin/python3")
def test_a_serving_agent_exits_at_once_when_stdin_closes_mid_operation(
        tmp_path: Path, echo_port: int) -> None:
    """The controller went away during a 20 s load: the agent exits within a second or
    two (EX_TEMPFAIL), not when the load ends; it reads no request twice meanwhile."""
    assert SYSTEM_PYTHON is not None
    bundle = build_agent(tmp_path)
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port),), duration=20.0, progress=False)
    proc = subprocess.Popen([SYSTEM_PYTHON, "-I", str(bundle.path), "serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"op": "load", "spec": spec_to_json(spec)}).encode() + b"\n")
    proc.stdin.flush()
    time.sleep(1.0)  # the load runs
    assert proc.poll() is None
    t0 = time.monotonic()
    proc.stdin.close()
    assert proc.wait(timeout=10) == 75
    assert time.monotonic() - t0 < 5
    assert proc.stdout.read() == b""  # no answer: the operation was abandoned


def test_the_wire_documents_equal_asdicts_and_leave_derived_figures_out(
        echo_port: int) -> None:
    spec = LoadSpec(targets=(Target("127.0.0.1", echo_port),), connections=2,
                    duration=None, bytes_per_connection=1 << 16, progress=False)
    result = run_load(spec)
    assert json.dumps(spec_to_json(spec)) == json.dumps(dataclasses.asdict(spec))
    assert json.dumps(result_to_json(result)) == json.dumps(dataclasses.asdict(result))
    assert "bytes_echoed" not in result_to_json(result)  # recomputed on decoding
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))).bytes_echoed \
        == 2 << 16


def _serve_all(bundle: Path, requests: Sequence[object]) -> list[Any]:
    """Each request to one real agent in serve mode, one at a time (EOF during an
    operation abandons it); the answers. The agent must then exit 0."""
    assert SYSTEM_PYTHON is not None
    proc = subprocess.Popen([SYSTEM_PYTHON, "-I", str(bundle), "serve"], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    for request in requests:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        answers.append(json.loads(proc.stdout.readline()))
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    return answers
