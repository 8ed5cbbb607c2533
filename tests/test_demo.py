"""The demo corpus (symato.data.demo): pins, text converters, a real build from the registries."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from symato.data import demo


def test_pins_are_complete() -> None:
    pins = demo.pins_for(demo.load_pins(), "vi")
    assert [p["name"] for p in pins["pypi"]] == ["underthesea"]
    assert pins["pypi"][0]["version"] == "9.5.0"
    packages = {p["package"] for p in pins["debian"]}
    assert packages == {
        "libreoffice-help-vi",
        "manpages-vi",
        "maint-guide-vi",
        "debian-handbook",
        "firefox-esr-l10n-vi",
    }
    for pin in pins["pypi"] + pins["debian"]:
        assert re.fullmatch(r"[0-9a-f]{64}", pin["sha256"])
        assert pin["license"] and pin["version"] and pin["content"]


def test_detokenize_and_vlsp_documents() -> None:
    toks = [
        "Ông",
        "Nguyễn Văn A",
        "(",
        "Hà Nội",
        ")",
        "nói",
        ":",
        "“",
        "Tốt",
        "”",
        ",",
        "đúng",
        ".",
    ]
    assert demo.detokenize(toks) == "Ông Nguyễn Văn A (Hà Nội) nói: “Tốt”, đúng."
    assert demo.detokenize(["a", '"', "b", "c", '"', "."]) == 'a "b c".'
    vlsp = "Hà_Nội\tNp\tB-Np\nđẹp\tA\n.\tCH\n\n" * 7 + "Xong\tN\n!\tCH\n"
    docs = list(demo.vlsp_documents(vlsp, per_paragraph=2, per_document=4))
    assert len(docs) == 2
    assert docs[0] == "Hà Nội đẹp. Hà Nội đẹp.\n\nHà Nội đẹp. Hà Nội đẹp."
    assert docs[1].endswith("Xong!")
    heading = "1\tM\n.\tCH\nMở_đầu\tN\n\nCâu\tN\nmột\tM\n.\tCH\n\nCâu\tN\nhai\tM\n.\tCH\n"
    assert list(demo.vlsp_documents(heading)) == ["1. Mở đầu\n\nCâu một. Câu hai."]


def test_html_to_text_keeps_blocks_drops_scripts() -> None:
    page = (
        "<html><head><title>T</title><script>var x=1;</script></head><body>"
        "<h1>Tiêu &amp; đề</h1><p>Đoạn  một\n<b>đậm</b>.</p><ul><li>Mục</li></ul>"
        "<style>p{}</style></body></html>"
    )
    assert demo.html_to_text(page) == "Tiêu & đề\n\nĐoạn một đậm.\n\nMục"


def test_groff_to_text() -> None:
    man = (
        '.\\" comment\n.TH LS 1 "2023"\n.SH "TÊN"\nls \\- liệt kê\n.PP\n'
        "\\fBls\\fP [\\fI\\,TÙY_CHỌN\\/\\fP]\\(em in ra \\(lqtệp\\(rq\n"
        ".TP\n.BR ls (1)\n"
    )
    assert demo.groff_to_text(man) == "TÊN\n\nls - liệt kê\n\nls [TÙY_CHỌN]— in ra “tệp”\n\nls(1)"


def test_firefox_strings() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "l/a.ftl",
            "# comment\nmsg-a = Mở { -brand-short-name } mới\nmsg-b =\n    .label = Đóng thẻ\n"
            "msg-c =\n    Dòng một\n    dòng hai\n"
            "msg-d = <strong>Phạm vi:</strong> <a data-l10n-name='x'></a>\n",
        )
        zf.writestr("l/b.properties", "# c\nx = Tập tin %S không đọc được.\ny=Có\n")
        zf.writestr("l/c.png", b"\x89PNG")
    docs = list(demo.firefox_documents(buf.getvalue(), "ff"))
    assert docs == [
        ("ff/l/a.ftl", "Mở mới\n\nĐóng thẻ\n\nDòng một dòng hai\n\nPhạm vi:"),
        ("ff/l/b.properties", "Tập tin không đọc được.\n\nCó"),
    ]


def test_bad_cached_wheel_is_refetched_or_rejected(tmp_path: Path) -> None:
    pin = dict(demo.load_pins()["pypi"][0], sha256="0" * 64)
    (tmp_path / "pypi").mkdir()
    (tmp_path / "pypi" / pin["filename"]).write_bytes(b"not a wheel")
    pin["version"] = "0.0.0-does-not-exist"
    with pytest.raises(demo.SymatoError, match="pip download of underthesea"):
        demo.fetch_wheel(pin, tmp_path)


@pytest.mark.slow
def test_build_demo_from_the_registries(tmp_path: Path, capsys) -> None:
    """Downloads the pinned packages (PyPI always, Debian where apt-get works)."""
    cache, out, manifest = tmp_path / "cache", tmp_path / "demo.jsonl", tmp_path / "manifest.json"
    argv = ["--cache", str(cache), "--out", str(out), "--manifest", str(manifest)]
    assert demo.main(argv) == 0
    info = json.loads(manifest.read_text())
    by_name = {e["name"]: e for e in info["sources"]}
    assert by_name["underthesea"]["status"] == "used"
    assert by_name["underthesea"]["documents"] > 100
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(docs) == info["output"]["documents"]
    assert any("Hiến pháp" in d["text"] for d in docs)
    assert (cache / "licenses" / "underthesea.LICENSE").exists()
    used = [e for e in info["sources"] if e["registry"] == "debian" and e["status"] == "used"]
    if used:  # apt-get worked: the Debian part is there with its licences
        assert info["output"]["bytes"] > 2_000_000
        assert all((cache / "licenses" / f"{e['name']}.copyright").exists() for e in used)
    else:
        assert "WARNING" in capsys.readouterr().err
    # A second run reuses the cache and writes the same corpus.
    first = out.read_bytes()
    wheel = next((cache / "pypi").glob("*.whl"))
    mtime = wheel.stat().st_mtime_ns
    assert demo.main(argv) == 0
    assert out.read_bytes() == first and wheel.stat().st_mtime_ns == mtime
