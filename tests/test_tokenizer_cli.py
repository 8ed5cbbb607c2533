"""``symato encode`` / ``decode`` / ``vocab-info`` through the real console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SYMATO = [str(Path(sys.executable).with_name("symato"))]
if not Path(SYMATO[0]).exists():
    SYMATO = [sys.executable, "-m", "symato"]


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*SYMATO, *args], input=stdin, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("v") / "symato+50.json"
    assert run("vocab", "--name", "symato+50", "--out", str(path)).returncode == 0
    return str(path)


def test_encode_decode_round_trip_any_bytes(vocab):
    data = "Nước Việt Nam hình chữ S. ĐIỀU 7, ok\n".encode() + b"\xff\x00 tail"
    for spec in ("default", vocab):
        enc = run("encode", "--vocab", spec, stdin=data)
        assert enc.returncode == 0, enc.stderr
        dec = run("decode", "--vocab", spec, stdin=enc.stdout)
        assert dec.returncode == 0 and dec.stdout == data


def test_encode_pieces():
    out = run("encode", "--vocab", "default", "--pieces", stdin="Việt Nam".encode())
    assert out.stdout.decode() == "<Title> viet <ậ> <Title> nam <a>\n"


def test_vocab_info(vocab):
    out = run("vocab-info", vocab)
    assert out.returncode == 0
    text = out.stdout.decode()
    assert "kind: symato+50" in text and "vocab_size: 2866" in text
    assert "syllable 50" in text and "sym 2275" in text and "marktone 18" in text


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("decode", "--vocab", "default"), b"1 2\n3 99999", "token id 99999 at position 3"),
        (("decode", "--vocab", "default"), b"1 x", "stdin line 1: 'x' is not a token id"),
        (("encode", "--vocab", "/nonexistent/v.json"), b"a", "not found: /nonexistent/v.json"),
        (("vocab-info", "/nonexistent/v.json"), b"", "not found"),
    ],
)
def test_clear_errors(args, stdin, message):
    out = run(*args, stdin=stdin)
    assert out.returncode == 1
    err = out.stderr.decode()
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_corrupt_vocab_file(tmp_path, vocab):
    bad = tmp_path / "bad.json"
    bad.write_bytes(Path(vocab).read_bytes()[:500])
    out = run("vocab-info", str(bad))
    assert out.returncode == 1 and b"not valid JSON" in out.stderr
    assert str(bad).encode() in out.stderr


def test_symato_bpe_through_the_cli(tmp_path):
    import pandas as pd

    texts = tmp_path / "t.parquet"
    pd.DataFrame({"text": [f"Năm {1990 + i}, xem https://a.vn/{i} ok." for i in range(30)]}
                 ).to_parquet(texts)
    path = tmp_path / "symato-bpe2600.json"
    made = run("vocab", "--name", "symato-bpe2600", "--texts", str(texts), "--out", str(path))
    assert made.returncode == 0, made.stderr
    info = run("vocab-info", str(path)).stdout.decode()
    assert "kind: symato-bpe2600" in info and "vocab_size: 2600" in info and "merge " in info
    data = "Năm 1995, xem https://a.vn/7 ok.\n".encode() + b"\xff"
    enc = run("encode", "--vocab", str(path), stdin=data)
    assert run("decode", "--vocab", str(path), stdin=enc.stdout).stdout == data
