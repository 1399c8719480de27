"""Writing a bundle's verified members to a directory, and nothing else.

Members are written into a private staging directory created beside the target (mode 0700, so
no other user can plant a file or a symlink in it), each file created with ``O_EXCL`` and
``O_NOFOLLOW``. Only once the whole bundle has verified is the staging directory renamed to the
target, so the target never holds a byte that did not verify: a failed verification leaves no
trace but the target as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from ledger.errors import VerificationError


class ExtractionError(VerificationError):
    """The target directory cannot receive a bundle: it is not new or empty, or not ours."""


class StagedExtraction:
    """A staging directory for one bundle's members, moved into place by `finish`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        _check_target(target)
        parent = target.parent
        if not parent.is_dir():
            raise ExtractionError(f"{parent} is not a directory")
        self.staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))

    def create(self, name: str) -> BinaryIO:
        """A new file for a member (its name already checked as a plain relative path)."""
        *folders, _ = name.split("/")
        folder = self.staging
        for part in folders:
            folder = folder / part
            if not folder.is_dir():
                folder.mkdir(mode=0o700)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)
        descriptor = os.open(self.staging / name, flags, 0o600)
        return os.fdopen(descriptor, "wb")

    def open(self, name: str) -> BinaryIO:
        descriptor = os.open(self.staging / name, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(descriptor, "rb")

    def finish(self) -> None:
        """Move the verified members into place."""
        _check_target(self.target)
        if self.target.exists():
            self.target.rmdir()  # empty, checked just now
        self.staging.rename(self.target)

    def abandon(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _check_target(target: Path) -> None:
    try:
        found = target.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(found.st_mode):
        raise ExtractionError(f"{target} exists and is not a directory (or is a symlink)")
    if any(target.iterdir()):
        raise ExtractionError(f"{target} is not empty: extract into a new or empty directory")
