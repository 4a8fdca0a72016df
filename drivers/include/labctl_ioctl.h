/*
 * labctl_ioctl.h -- the control-device contract between Driver Lab's Windows drivers
 * and the user-mode tool labctl.exe. Shared by kernel and user mode: keep it free of
 * anything but plain macros.
 *
 *   driver   control device (kernel)   user-mode path     service key (knobs, read at load)
 *   wskecho  \Device\WskEchoCtl        \\.\WskEchoCtl     HKLM\SYSTEM\CurrentControlSet\Services\wskecho\Parameters
 *   labtdi   \Device\LabTdiCtl         \\.\LabTdiCtl      HKLM\SYSTEM\CurrentControlSet\Services\labtdi\Parameters
 *
 * IOCTL_LAB_READ_JOURNAL (METHOD_BUFFERED, no input): the output buffer receives the
 * journal as ASCII text, one event per line in the format of drivers/events.txt
 * ("<t_ns> <driver> <EVENT> <adapter> <status>\n"), oldest first. The driver keeps the
 * newest LAB_JOURNAL_SLOTS lines; Information is the number of bytes returned. If the
 * buffer is too small the driver returns STATUS_BUFFER_OVERFLOW with as many whole
 * lines as fit.
 */
#ifndef LAB_CTL_IOCTL_H
#define LAB_CTL_IOCTL_H

#define LAB_FILE_DEVICE 0x00000022 /* FILE_DEVICE_UNKNOWN */
#define LAB_CTL_CODE(fn) (((LAB_FILE_DEVICE) << 16) | ((0x0001 /* FILE_READ_ACCESS */) << 14) | ((fn) << 2) | 0 /* METHOD_BUFFERED */)
#define IOCTL_LAB_READ_JOURNAL LAB_CTL_CODE(0x801)

#define LAB_JOURNAL_SLOTS 8192
#define LAB_JOURNAL_LINE 112 /* bytes per stored line, including the newline */

/* Fault knobs: REG_DWORD values under the service's Parameters key, read at load. */
#define LAB_KNOB_SKIP_DEREGISTER L"FaultSkipDeregister"   /* 1: skip one deregistration at unload */
#define LAB_KNOB_CORRUPT_EVERY_KIB L"FaultCorruptEveryKiB" /* N>0: corrupt one echoed byte every N KiB (wskecho) */
#define LAB_KNOB_BLOCK_UNLOAD L"FaultBlockUnload"         /* 1: Unload never returns */
#define LAB_KNOB_LEAK_ADAPTER_REF L"FaultLeakAdapterRef"   /* 1: keep the adapter referenced on unbind (labtdi; unplug hangs) */
#define LAB_KNOB_CRASH_ON_UNBIND L"FaultCrashOnUnbind"     /* 1: bug check in UnbindAdapterEx (labtdi) */

#endif /* LAB_CTL_IOCTL_H */
