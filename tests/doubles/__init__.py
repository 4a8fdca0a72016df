"""Test doubles for the lab's unit tests (nothing here talks to a real guest).

``windows_guest`` is a test double of a Windows Server 2022 guest at the command
layer (the :class:`lab.guests.base.Shell` protocol); ``windows_outputs`` holds the
sample output formats it prints, each with the source of its format.
"""
