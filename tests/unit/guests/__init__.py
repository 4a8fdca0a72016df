"""Unit tests of the guest kinds (and of the Windows guest test double)."""
