"""Atomic writes: all or nothing, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from symato.errors import SymatoError
from symato.io import atomic_path, read_json, write_json_atomic, write_text_atomic


def test_atomic_write_keeps_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole"


def test_atomic_write_uses_the_umask_not_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"b": 1, "a": 2})
        os.umask(0o077)
        write_json_atomic(tmp_path / "private.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert (tmp_path / "a.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_read_json_names_the_file_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": }')
    with pytest.raises(SymatoError, match=r"bad.json is not valid JSON \(line 2, column 7\)"):
        read_json(bad)
    with pytest.raises(SymatoError, match="not found"):
        read_json(tmp_path / "none.json")
