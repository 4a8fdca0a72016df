"""Traffic scenarios: echo load, capacity (many connections), load while a NIC churns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lab import budgets, hostagent
from lab.errors import DriverFailure, LabFailure
from lab.guests.base import Deployment
from lab.load import ConnError, LoadResult, LoadSpec, Mode, Target
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.scenarios.common import Measurements, echo_once, record, require_inside_lab
from lab.vm import Vm

#: errors within this long before the churn started still count as the churn's (the
#: load's clock starts a little after the lab's own)
CHURN_CLOCK_SLACK_S = 1.0
#: how a data error reads in a verdict (the load engine tells loss, reorder, corruption)
_FAULT_WORDS = {"loss": "lost bytes", "reorder": "reordered bytes", "corrupt": "corrupt byte"}


def _spec(nics: tuple[Nic, ...], **kw: object) -> LoadSpec:
    return LoadSpec(targets=tuple(Target(n.address, ECHO_PORT) for n in nics),
                    connect_timeout=budgets.FIRST_ECHO.seconds,
                    stall_timeout=budgets.STALL.seconds, progress=False, **kw)  # type: ignore[arg-type]


def _data_error(errors: tuple[ConnError, ...] | list[ConnError], what: str) -> None:
    bad = [e for e in errors if e.data_error]
    if bad:
        kind = _FAULT_WORDS.get(str(bad[0].fault), "corrupt byte")
        raise DriverFailure(f"{kind} in the echoed stream{what}: {bad[0].describe()}")


def check_load(result: LoadResult) -> None:
    """Every byte echoed intact, no connection failed."""
    _data_error(result.errors, "")
    if result.errors:
        raise DriverFailure(f"echo load failed: {result.errors[0].describe()} "
                            f"({len(result.errors)} errors: {result.error_counts})")
    if result.bytes_echoed == 0 and result.ops == 0:
        raise DriverFailure("echo load moved no data")


def load(vm: Vm, nics: tuple[Nic, ...], seconds: float = 3.0,
         connections: int = 4) -> Measurements:
    """Echo load on every test NIC at once; every byte must come back intact."""
    require_inside_lab(nics, "echo load to")
    m = Measurements()
    vm.timeline.add(f"load: {connections} connections x {len(nics)} NICs for {seconds}s")
    result = hostagent.current().run_load(_spec(nics, connections=connections, duration=seconds))
    record(vm, m, result)
    m.values["throughput_Bps"] = result.throughput
    vm.timeline.add(f"load done: {result.bytes_echoed} bytes, {len(result.errors)} errors")
    check_load(result)
    return m


def capacity(vm: Vm, nics: tuple[Nic, ...], connects: int = 400, streams: int = 64,
             budget_s: float = 120.0) -> Measurements:
    """Many short connections (connect mode), then many concurrent streams.

    A driver whose accept path dies after N connections, or that cannot serve
    ``streams`` connections at once, fails here: every connection must be accepted
    and echoed, none may stall.
    """
    require_inside_lab(nics, "echo load to")
    m = Measurements()
    done = 0
    t0 = time.monotonic()
    while done < connects:
        if time.monotonic() - t0 > budget_s:
            raise DriverFailure(f"capacity: only {done} of {connects} connections served in "
                                f"{budget_s:.0f}s (no errors, just too slow)")
        result = hostagent.current().run_load(
            _spec(nics, mode=Mode.CONNECT, connections=8, duration=2.0))
        record(vm, m, result)
        if result.errors:
            _data_error(result.errors, " (connect mode)")
            raise DriverFailure(f"capacity: connection {done + 1 + result.ops} or near it "
                                f"failed after {done + result.ops} served: "
                                f"{result.errors[0].describe()} ({result.error_counts})")
        done += result.ops
    vm.timeline.add(f"capacity: {done} short connections served")
    m.values["connects"] = done
    per_nic = max(1, streams // len(nics))
    result = hostagent.current().run_load(_spec(nics, connections=per_nic, duration=3.0))
    record(vm, m, result)
    check_load(result)
    idle = [c for c in result.connections if c.received == 0]
    if idle:
        raise DriverFailure(f"capacity: {len(idle)} of {len(result.connections)} concurrent "
                            f"streams got no echo at all (first: conn {idle[0].conn} to "
                            f"{idle[0].target})")
    vm.timeline.add(f"capacity: {len(result.connections)} concurrent streams echoed")
    m.values["streams"] = len(result.connections)
    return m


def load_churn(vm: Vm, nics: tuple[Nic, ...], churn: Nic, action: str,
               tdi: Deployment | None = None, seconds: float = 8.0) -> Measurements:
    """Load on every NIC while ``churn`` is unplugged/replugged (or unbound/rebound)."""
    m = Measurements()
    result, churn_at = load_during(vm, nics, lambda: _churn(vm, churn, action, tdi),
                                   f"{action} churn of {churn.alias}", seconds)
    m.loads.append(result)
    check_churn(result, churn, churn_at)
    echo_once(churn)  # traffic resumes on the churned NIC
    m.values["throughput_Bps"] = result.throughput
    m.values["affected"] = [t.target for t in result.affected_targets]
    return m


def _churn(vm: Vm, nic: Nic, action: str, tdi: Deployment | None) -> None:
    if action == "unplug":
        vm.unplug(nic)
        time.sleep(1.0)
        vm.replug(nic)
    elif action == "unbind":
        if tdi is None:
            raise LabFailure("unbind churn needs the labtdi deployment")
        info = vm.handle.adapter(nic.mac)
        tdi.unbind(info)
        time.sleep(1.0)
        tdi.bind(info)
    else:
        raise LabFailure(f"unknown churn action {action!r} (unplug or unbind)")


def check_churn(result: LoadResult, churn: Nic, churn_at: float) -> None:
    """No data error anywhere; errors only on the churned NIC and only once it churned."""
    target = f"{churn.address}:{ECHO_PORT}"
    _data_error(result.errors, " during churn")
    early = [e for e in result.errors if e.time < churn_at - CHURN_CLOCK_SLACK_S]
    if early:
        raise DriverFailure(f"echo load failed before the churn of {churn.alias} began "
                            f"(at {churn_at:.1f}s): {early[0].describe()}")
    stray = [e for e in result.errors if e.target != target]
    if stray:
        raise DriverFailure(f"churn of {churn.alias} broke connections on another NIC: "
                            f"{stray[0].describe()}")
    for summary in result.targets:
        if summary.bytes == 0:
            raise DriverFailure(f"no traffic at all on {summary.target} during churn")


def load_during(vm: Vm, nics: tuple[Nic, ...], action: Callable[[], None], what: str,
                seconds: float = 8.0) -> tuple[LoadResult, float]:
    """Load on every NIC (connections reconnect) with ``action`` run a quarter into it.

    Returns the load's result (kept in the VM's evidence) and when the action began, in
    seconds after the load started (for :func:`check_churn`). The load is waited for
    even when the action fails, and the action's error wins.
    """
    require_inside_lab(nics, "echo load to")
    box: dict[str, LoadResult | BaseException] = {}
    spec = _spec(nics, connections=2, duration=seconds, reconnect=True)
    instruments = hostagent.current()  # the thread below does not inherit the context

    def runner() -> None:
        try:
            box["result"] = instruments.run_load(spec)
        except BaseException as exc:  # handed to the main thread below
            box["result"] = exc

    thread = threading.Thread(target=runner, name="load-during")
    vm.timeline.add(f"load: {spec.connections} connections x {len(nics)} NICs for "
                    f"{seconds}s during {what}")
    started = time.monotonic()
    thread.start()
    try:
        time.sleep(seconds * 0.25)
        action_at = time.monotonic() - started
        action()
    finally:
        thread.join(seconds + 60)
    if thread.is_alive():
        raise LabFailure(f"the load during {what} did not stop within {seconds + 60:.0f}s")
    result = box.get("result")
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, LoadResult)
    vm.loads.append(result)
    return result, action_at
