"""The mode of the files longtail writes."""

from __future__ import annotations

import os


def file_mode() -> int:
    """The mode a new file gets under this process's umask (``0o644`` under the usual 022).

    ``tempfile.mkstemp`` creates its file ``0o600`` whatever the umask, and a rename keeps the
    mode: records, reports and downloaded data on a shared folder would be unreadable to
    everyone else. Linux says the umask in ``/proc/self/status``; elsewhere it is read by
    setting it (and setting it back).
    """
    return 0o666 & ~_umask()


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
