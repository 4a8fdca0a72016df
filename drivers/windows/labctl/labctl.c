/*
 * labctl.exe -- Driver Lab's user-mode tool for its Windows drivers.
 *
 *   labctl journal <wskecho|labtdi>            print the driver's journal (IOCTL on its control device)
 *   labctl knob <service> <Name> <dword>       set a fault knob / parameter (read at next load)
 *   labctl knobs <service>                     list the DWORD values under <service>\Parameters
 *   labctl clear <service>                     delete every Fault* knob of <service>
 *   labctl version
 *
 * Knobs live under HKLM\SYSTEM\CurrentControlSet\Services\<service>\Parameters (see
 * drivers/include/labctl_ioctl.h). Exit status: 0 ok, 1 usage, 2 failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "labctl_ioctl.h"

#define JOURNAL_BUFFER (LAB_JOURNAL_SLOTS * LAB_JOURNAL_LINE + 4096)

static int usage(void)
{
    fputs("usage: labctl journal <wskecho|labtdi>\n"
          "       labctl knob <service> <Name> <dword>\n"
          "       labctl knobs <service>\n"
          "       labctl clear <service>\n"
          "       labctl version\n",
          stderr);
    return 1;
}

static int fail(const char *what, DWORD err)
{
    fprintf(stderr, "labctl: %s failed (error %lu)\n", what, (unsigned long)err);
    return 2;
}

static const char *control_path(const char *driver)
{
    if (!_stricmp(driver, "wskecho"))
        return "\\\\.\\WskEchoCtl";
    if (!_stricmp(driver, "labtdi"))
        return "\\\\.\\LabTdiCtl";
    return NULL;
}

static int cmd_journal(const char *driver)
{
    const char *path = control_path(driver);
    HANDLE h;
    char *buf;
    DWORD got = 0;
    BOOL ok;

    if (!path)
        return usage();
    h = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return fail("open control device", GetLastError());
    buf = malloc(JOURNAL_BUFFER);
    if (!buf) {
        CloseHandle(h);
        return fail("malloc", ERROR_OUTOFMEMORY);
    }
    ok = DeviceIoControl(h, IOCTL_LAB_READ_JOURNAL, NULL, 0, buf, JOURNAL_BUFFER, &got, NULL);
    if (!ok && GetLastError() != ERROR_MORE_DATA) {
        DWORD err = GetLastError();
        free(buf);
        CloseHandle(h);
        return fail("IOCTL_LAB_READ_JOURNAL", err);
    }
    fwrite(buf, 1, got, stdout);
    fflush(stdout);
    free(buf);
    CloseHandle(h);
    return 0;
}

static LONG open_parameters(const char *service, REGSAM access, HKEY *key)
{
    char path[512];
    snprintf(path, sizeof(path), "SYSTEM\\CurrentControlSet\\Services\\%s\\Parameters", service);
    return RegCreateKeyExA(HKEY_LOCAL_MACHINE, path, 0, NULL, 0, access, NULL, key, NULL);
}

static int cmd_knob(const char *service, const char *name, const char *value)
{
    HKEY key;
    char *end = NULL;
    unsigned long v = strtoul(value, &end, 0);
    DWORD dw = (DWORD)v;
    LONG rc;

    if (!end || *end)
        return usage();
    rc = open_parameters(service, KEY_SET_VALUE, &key);
    if (rc != ERROR_SUCCESS)
        return fail("open Parameters key", (DWORD)rc);
    rc = RegSetValueExA(key, name, 0, REG_DWORD, (const BYTE *)&dw, sizeof(dw));
    RegCloseKey(key);
    if (rc != ERROR_SUCCESS)
        return fail("set value", (DWORD)rc);
    printf("%s\\Parameters\\%s = %lu\n", service, name, (unsigned long)dw);
    return 0;
}

static int walk_values(const char *service, int clear_faults)
{
    HKEY key;
    DWORD i;
    LONG rc = open_parameters(service, KEY_QUERY_VALUE | KEY_SET_VALUE, &key);

    if (rc != ERROR_SUCCESS)
        return fail("open Parameters key", (DWORD)rc);
    for (i = 0;;) {
        char name[256];
        DWORD nlen = sizeof(name), type = 0, data = 0, dlen = sizeof(data);
        rc = RegEnumValueA(key, i, name, &nlen, NULL, &type, (BYTE *)&data, &dlen);
        if (rc == ERROR_NO_MORE_ITEMS)
            break;
        if (rc == ERROR_MORE_DATA || (rc == ERROR_SUCCESS && type != REG_DWORD)) {
            i++;
            continue;
        }
        if (rc != ERROR_SUCCESS) {
            RegCloseKey(key);
            return fail("enumerate values", (DWORD)rc);
        }
        if (clear_faults && !strncmp(name, "Fault", 5)) {
            RegDeleteValueA(key, name);
            printf("deleted %s\n", name);
            continue; /* indexes shift after a delete */
        }
        if (!clear_faults)
            printf("%s=%lu\n", name, (unsigned long)data);
        i++;
    }
    RegCloseKey(key);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "version")) {
        puts("labctl 1 (Driver Lab)");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "journal"))
        return cmd_journal(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "knob"))
        return cmd_knob(argv[2], argv[3], argv[4]);
    if (argc == 3 && !strcmp(argv[1], "knobs"))
        return walk_values(argv[2], 0);
    if (argc == 3 && !strcmp(argv[1], "clear"))
        return walk_values(argv[2], 1);
    return usage();
}
