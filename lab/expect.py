"""Self-tests that expect a verdict: "expected driver hung, got driver hung".

A fault-knob scenario passes when the lab gives the verdict the knob's bug deserves.
:func:`expect_verdict` works out the verdict the lab gives the caught error (as the
pytest plugin would for a failed scenario), keeps expected and observed on the test's
evidence, and fails the test when they differ. The plugin then writes both as JUnit
properties (``expected_verdict``, ``verdict``) and into ``verdict.txt``, so a passing
self-test never reads as a bare ``pass``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lab.leases import LeasedVm
from lab.verdict import classify

#: How long a crash may take to reach libvirt after the error that noticed it.
CRASH_GRACE_S = 15.0


@dataclass(frozen=True)
class Expectation:
    expected: tuple[str, ...]
    got: str

    @property
    def met(self) -> bool:
        return self.got in self.expected

    @property
    def expected_text(self) -> str:
        return " or ".join(self.expected)

    def text(self) -> str:
        return f"expected {self.expected_text}, got {self.got}"


def observed_verdict(lab_vm: LeasedVm, exc: BaseException,
                     grace: float = CRASH_GRACE_S) -> str:
    """The verdict of ``exc`` as the plugin gives it; a crash may need a moment to show."""
    deadline = time.monotonic() + grace
    crashed = lab_vm.vm.crashed()
    while not crashed and time.monotonic() < deadline:
        time.sleep(0.5)
        crashed = lab_vm.vm.crashed()
    return classify(exc, crashed)


def expect_verdict(lab_vm: LeasedVm, exc: BaseException, *expected: str,
                   grace: float = CRASH_GRACE_S) -> str:
    """Record and check the verdict of ``exc``; returns it (AssertionError on a mismatch)."""
    expectation = Expectation(tuple(expected), observed_verdict(lab_vm, exc, grace))
    lab_vm.evidence.expectation = expectation
    lab_vm.vm.timeline.add(f"self-test: {expectation.text()}")
    if not expectation.met:
        raise AssertionError(f"{expectation.text()}: {exc}")
    return expectation.got
