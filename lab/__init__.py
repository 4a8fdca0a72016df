"""Driver Lab: a QEMU/libvirt lab for Windows network driver scenarios."""

__version__ = "0.1.0"
