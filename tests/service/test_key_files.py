"""Key files are written through a fresh temporary file of their own, mode 0600: nothing planted
beforehand under a temporary name (a world-readable file, a symlink) is written through or
lends the key its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from decision_log.privacy.keyring import create_files, read_kek_file, write_kek_file


def test_a_kek_write_ignores_a_planted_world_readable_temporary_file(tmp_path: Path) -> None:
    kek_file = tmp_path / "kek.json"
    create_files(kek_file=kek_file, pseudonym_key_file=tmp_path / "pseudonym.key")
    planted = kek_file.with_suffix(".tmp")
    planted.write_text("planted\n")
    planted.chmod(0o644)
    elsewhere = tmp_path / "elsewhere.json"
    (tmp_path / ".kek.json.tmp").symlink_to(elsewhere)

    active, keks = read_kek_file(kek_file)
    write_kek_file(kek_file, active, keks | {"kek-two": bytes(32)})

    assert stat.S_IMODE(kek_file.stat().st_mode) == 0o600
    assert read_kek_file(kek_file)[1].keys() == {active, "kek-two"}
    assert planted.read_text() == "planted\n"  # untouched, and not the key's file
    assert not elsewhere.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert sorted(leftovers) == [".kek.json.tmp", "kek.tmp"]


def test_new_key_files_are_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o000)  # the widest umask: the files must still be owner-only
    try:
        create_files(kek_file=tmp_path / "kek.json", pseudonym_key_file=tmp_path / "pseudonym.key")
    finally:
        os.umask(previous)
    for name in ("kek.json", "pseudonym.key"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
