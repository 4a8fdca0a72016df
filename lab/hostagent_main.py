"""The host agent: runs instrument operations on this host, answers in JSON.

    python3 agent.pyz serve             one request line in, one result line out, until EOF
    python3 agent.pyz OP                one request (OP: one of hostagent_wire.OPS), then exit

A request is one JSON object on a line (``{"op": ..., ...}`` in serve mode). Before
it sends anything, the agent checks on its own host what the controller's route guard
checks on the controller (:func:`lab.route_guard.require_host_target`): a target must
be reached through a bridge of the lab (``"lab"`` in the request) in the namespace the
operation runs in, else the answer is an OutsideLab error. The
operation runs with the same code the controller runs in-process on its own host
(:mod:`lab.l2probe`, :mod:`lab.load`); the answer is one JSON line on stdout:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"class": ..., ...}}`` for a
lab error (see :mod:`lab.hostagent_wire`). Anything else (a bad request, a crash)
exits non-zero with the reason on stderr.

stdin stays open while the controller wants the agent: when it closes the channel
(its deadline, or it is done), stdin reaches EOF and the agent exits at once, even
mid-operation. Echo clients opened by ``clients-open`` stay open in this process until
``clients-close`` (or its exit); the controller sets the agent aside for them meanwhile.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from lab import echo_clients, netns
from lab.echo_clients import HeldClients
from lab.errors import LabError
from lab.hostagent_wire import (
    OP_CARRIES_IP,
    OP_CLIENTS_ECHO,
    OP_CLIENTS_OPEN,
    OP_L2PROBE,
    OP_LOAD,
    OPS,
    encode_error,
    probe_to_json,
    result_to_json,
    spec_from_json,
)
from lab.l2probe import probe
from lab.load import run_load
from lab.route_guard import require_host_bridge, require_host_target

#: How long a target the route guard passed stays passed in this agent: the check runs
#: `ip` twice (milliseconds), a load of 2 x 1 MiB takes about as long; a lab's bridges
#: do not change under a running suite.
GUARD_TTL_S = 10.0
_passed: dict[tuple[str | None, str, str | None, str | None], float] = {}


def _checked_target(where: str | None, host: str, lab: str | None,
                    source: str | None, what: str = "echo load to") -> None:
    """require_host_target, remembered for GUARD_TTL_S per (namespace, target, lab, source)."""
    key = (where, host, lab, source)
    if time.monotonic() - _passed.get(key, -GUARD_TTL_S) < GUARD_TTL_S:
        return
    require_host_target(host, f"{what} {host}", lab, source)
    _passed[key] = time.monotonic()


#: the echo clients this agent holds (clients-open to clients-close), at most one set
_held: list[HeldClients] = []

#: exit code when the controller went away mid-operation
EXIT_ABANDONED = 75
#: exit code for a request the agent cannot read
EXIT_BAD_REQUEST = 64


class _Stdin:
    """Request lines from stdin, read by the thread that runs them (a request reaches
    its operation without a hand-off between threads), and a watcher thread that ends
    the process when the controller goes away (its end of stdin closed) during an
    operation. The watcher waits for the hang-up alone and reads nothing. Raw reads of
    fd 0: nothing buffered in sys.stdin."""

    def __init__(self) -> None:
        self.busy = threading.Event()
        self._pending = b""
        self._lines: list[bytes] = []
        threading.Thread(target=self._watch, name="stdin-hangup", daemon=True).start()

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(0, select.POLLRDHUP)  # POLLHUP and POLLERR come unasked
        poller.poll()
        if self.busy.is_set():
            os._exit(EXIT_ABANDONED)
        # idle: the lines still unread are served, then the main thread reads EOF

    def get(self) -> bytes | None:
        """The next request line; None at EOF."""
        while not self._lines:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return None
            *self._lines, self._pending = (self._pending + chunk).split(b"\n")
        return self._lines.pop(0)


def parse(op: str, request: dict[str, Any]) -> Callable[[], Any]:
    """The operation ``request`` asks for, ready to run (KeyError/TypeError/ValueError:
    not a request of ``op``; LoadConfigError: a spec its own checks refuse)."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}")
    where, lab = request.get("netns"), request.get("lab")
    if where is not None and not isinstance(where, str):
        raise TypeError("netns is not a name")
    if lab is not None and not isinstance(lab, str):
        raise TypeError("lab is not a name")
    if op == OP_L2PROBE:
        bridge, mac, timeout = str(request["bridge"]), str(request["mac"]), \
            float(request["timeout"])

        def l2probe() -> Any:
            require_host_bridge(bridge, f"L2 probe through {bridge}", lab)
            return probe_to_json(probe(bridge, mac, timeout=timeout))
        return lambda: _in(where, l2probe)
    if op != OP_LOAD:
        return _parse_clients(op, request, where, lab)
    spec = spec_from_json({**request["spec"], "progress": False})

    def load() -> Any:
        for target in spec.targets:  # the route guard of the controller, on this host
            _checked_target(where, target.host, lab, target.source)
        return result_to_json(run_load(spec))
    return lambda: _in(where, load)


def _parse_clients(op: str, request: dict[str, Any], where: str | None,
                   lab: str | None) -> Callable[[], Any]:
    """The held-clients operations and the IP liveness check (see parse)."""
    if op == OP_CARRIES_IP:
        address, timeout = str(request["address"]), float(request["timeout"])

        def carries() -> Any:
            _checked_target(where, address, lab, None, "IP liveness probe to")
            return {"carries": echo_clients.carries_ip(address, timeout)}
        return lambda: _in(where, carries)
    if op == OP_CLIENTS_OPEN:
        addresses = [str(a) for a in request["addresses"]]
        port, who, timeout = int(request["port"]), str(request["who"]), float(request["timeout"])

        def open_clients() -> Any:
            for address in addresses:
                _checked_target(where, address, lab, None, "echo client to")
            _close_held()
            _held.append(HeldClients(addresses, port, who, timeout))
            return {"ports": list(_held[0].ports)}
        return lambda: _in(where, open_clients)
    if not _held:
        raise ValueError(f"{op}: no clients are open")
    if op == OP_CLIENTS_ECHO:
        index, payload = int(request["index"]), str(request["payload"]).encode("latin-1")
        stall = float(request["stall_s"])
        if not 0 <= index < len(_held[0].socks):
            raise ValueError(f"no client {index} (of {len(_held[0].socks)})")
        return lambda: {"outcome": _held[0].round_trip(index, payload, stall)}
    return lambda: {"closed": _close_held()}


def _close_held() -> int:
    closed = sum(held.close() for held in _held)
    _held.clear()
    return closed


def _in(where: str | None, action: Callable[[], Any]) -> Any:
    """``action`` run in network namespace ``where`` (this thread; None: where we are)."""
    if where:
        netns.enter(where)
    return action()


def handle(op: str, line: bytes, stdin: _Stdin) -> int | None:
    """Run one request and answer it; an exit code when the agent must stop."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise TypeError("the request is not a JSON object")
        action = parse(op if op in OPS else str(request["op"]), request)
    except LabError as exc:
        _answer({"ok": False, "error": encode_error(exc)})
        return None
    except (KeyError, TypeError, ValueError) as exc:
        print(f"agent: {op}: bad request: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    stdin.busy.set()
    try:
        doc: dict[str, Any] = {"ok": True, "result": action()}
    except LabError as exc:
        doc = {"ok": False, "error": encode_error(exc)}
    finally:
        stdin.busy.clear()
    _answer(doc)
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in (*OPS, "serve"):
        print(f"usage: agent.pyz {{serve|{'|'.join(OPS)}}} < requests", file=sys.stderr)
        return EXIT_BAD_REQUEST
    stdin = _Stdin()
    while (line := stdin.get()) is not None:
        stop = handle(argv[1], line, stdin)
        if stop is not None:
            return stop
        if argv[1] != "serve":
            return 0
    return 0


def _answer(doc: dict[str, Any]) -> None:
    data = memoryview((json.dumps(doc) + "\n").encode())
    while data:
        data = data[os.write(1, data):]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
