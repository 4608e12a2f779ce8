"""Writing the files the tool hands to people: whole or not at all, never over the state."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from edgeevo.errors import EdgeevoError


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8) or bytes under a temporary name beside ``path`` and rename it into
    place, so a reader sees the old file or the new one; EdgeevoError when it cannot be written."""
    check_output_path(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8") if isinstance(text, str) else text
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    except OSError as exc:
        raise EdgeevoError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def check_output_path(path: Path, *, protect: tuple[Path, ...] = ()) -> None:
    """EdgeevoError unless ``path`` can take a new file: not a folder, not a protected file,
    in a folder that exists (or can be made) and is writable."""
    if path.is_dir():
        raise EdgeevoError(f"output {str(path)!r} is a folder; expected a file path")
    for other in protect:
        if path.resolve() == other.resolve():
            raise EdgeevoError(
                f"output {str(path)!r} is the state file itself; expected another path"
            )
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise EdgeevoError(
            f"output {str(path)!r} cannot be written: {str(parent)!r} is not a writable folder"
        )
