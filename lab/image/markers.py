"""What the Windows provisioning script writes to COM1 and the image builder watches for.

One line each, ASCII, written by the first-logon script to the serial port the
install VM logs to a file (the only channel out of a VM without a network).
"""

from __future__ import annotations

#: a step of the provisioning script began: "driver-lab: step <n>/<total>: <what>"
STEP_PREFIX = "driver-lab: step "
#: the script finished every step; the VM shuts itself down next
COMPLETION_MARKER = "driver-lab: image ready"
#: a step failed: "driver-lab: image failed: <step>: <message>"; the VM shuts down next
FAILURE_PREFIX = "driver-lab: image failed: "
#: volume label of the config media (the script and Setup find it by this label)
CONFIG_MEDIA_LABEL = "DLCONFIG"
