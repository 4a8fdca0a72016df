"""The lab's mutation self-test: does every oracle still bite?

Mutants of the Linux twins (``drivers/<driver>/linux/mutants/*.patch``), each one
realistic bug, are built, deployed through the scenario suite itself
(``pytest tests/scenarios --lab-mutant NAME``) and scored: a mutant is *killed* when
a scenario that must catch it fails with the expected verdict; a negative control
(healthy but slow) must pass every scenario it names.
"""
