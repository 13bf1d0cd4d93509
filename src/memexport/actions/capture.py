"""An optional memray capture: every allocation of the next seconds, in a file beside the report.

memray (``pip install memexport[memray]``) tracks allocations from inside the process, so no
ptrace or gdb is needed as py-spy or an external ``memray attach`` would. The capture runs on
the action thread for at most ``seconds`` (and the action's remaining time), records all
threads' allocations in memray's aggregated format (small: one record per live allocation
site) and is committed to the evidence directory as ``<time>-<alert>-<action>.bin`` (read it
with ``memray flamegraph`` or ``memray summary``). While it runs every allocation of the app
is slower (about 2-5x); only one memray tracker can run in a process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from memexport.actions.catalog import ActionContext

__all__ = ["memray_available", "memray_capture"]


def memray_available() -> bool:
    try:
        import memray  # noqa: F401
    except ImportError:
        return False
    return True


def memray_capture(seconds: float, ctx: ActionContext) -> Any:
    """Capture ``seconds`` of allocations with memray; the file's name, or why not."""
    try:
        import memray
    except ImportError:
        return {"available": False, "hint": "pip install memexport[memray]"}
    store = ctx.store
    if store is None:
        return {"available": True, "skipped": "no evidence_dir"}
    span = min(float(seconds), ctx.remaining() - 1.0)
    if span <= 0:
        return {"available": True, "skipped": "no time left before the action's timeout"}
    tmp = store.reserve()
    try:
        dest = memray.FileDestination(str(tmp), overwrite=True, compress_on_exit=True)
        with memray.Tracker(destination=dest,
                            file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS):
            threading.Event().wait(span)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    name = store.commit(tmp, ctx.alertname, ctx.action, "bin")
    if name is None:
        return {"available": True, "seconds": span, "skipped": "larger than the evidence cap"}
    return {"available": True, "seconds": round(span, 3), "file": name}
