"""The scenario suite runs against the lab named by --lab-config (default ./lab.toml).

Fixtures come from the Driver Lab pytest plugin (lab/pytest_plugin.py):
lab_vm (a leased VM reverted to its clean snapshot, with evidence), nic_model
(parametrized from the lab's test NIC models).
"""
