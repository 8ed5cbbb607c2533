"""The built-in demo corpora (``symato demo``): real text from pinned packages.

Why packages: the pipeline must run on real Vietnamese text on a fresh machine that can
reach only the package registries. Packages there ship such text, and a package
version + sha256 pins it exactly, so every machine assembles the same corpus:

- PyPI: the ``underthesea`` wheel carries the VLSP-2013 POS test sentences (news and
  legal prose, stored one token per line with multi-syllable words joined). We rejoin
  the syllables and detokenize the punctuation.
- Debian (where ``apt-get download`` works; no root needed, and the system's apt state
  is never touched: lists and caches live under ``resources/demo/apt``): LibreOffice
  help pages, manual pages, the New Maintainers' Guide, the Debian Administrator's
  Handbook and Firefox's interface strings, all in Vietnamese.

The same documents were written in English first, so the same packages' English
originals make a second, source-language corpus (``--language en``: for studies of what
an English-trained model carries over to Vietnamese). Both come from one table of
sources, each tagged with its ``language``, read by the same downloaders and parsers.

Everything is downloaded once into the cache folder and reused; each file is checked
against the sha256 in ``symato/data/demo_sources.json``. The output is JSON lines (one
document per line: ``text`` and ``origin``) plus a manifest of provenance and licences.
Cleaning later drops what is not in the corpus's language (``clean.language``): for the
Vietnamese corpus, untranslated help pages and code samples.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from symato.errors import SymatoError
from symato.io import atomic_path, write_json_atomic, write_text_atomic

Doc = tuple[str, str]  # (origin, text)
LANGUAGES = ("vi", "en")  # the languages a demo corpus can be assembled in


def load_pins() -> dict:
    """The pinned sources shipped with the package (``symato/data/demo_sources.json``)."""
    text = resources.files("symato").joinpath("data/demo_sources.json").read_text("utf-8")
    return json.loads(text)


def pins_for(pins: dict, language: str) -> dict:
    """The sources of one language: ``pins`` with only the entries tagged ``language``.

    Every entry must name a known language: an untagged source would silently join no
    corpus, so it is an error naming the entry. Entries of one package (the Handbook
    holds both languages) must pin the same file, since it is downloaded once.
    """
    if language not in LANGUAGES:
        raise SymatoError(f"demo language {language!r}: expected one of {', '.join(LANGUAGES)}")
    files: dict[str, tuple[str, str, str]] = {}
    for pin in pins.get("debian", []):
        key = (pin["version"], pin["sha256"], pin.get("architecture", "all"))
        if files.setdefault(pin["package"], key) != key:
            raise SymatoError(
                f"demo_sources.json: package {pin['package']} is pinned twice with different "
                f"version/sha256/architecture: {files[pin['package']]} and {key}"
            )
    out = dict(pins)
    for registry in ("pypi", "debian"):
        for i, pin in enumerate(pins.get(registry, [])):
            if pin.get("language") not in LANGUAGES:
                name = pin.get("name", pin.get("package"))
                raise SymatoError(
                    f"demo_sources.json: {registry}[{i}] ({name}): 'language' is "
                    f"{pin.get('language')!r}, expected one of {', '.join(LANGUAGES)}"
                )
        out[registry] = [p for p in pins.get(registry, []) if p["language"] == language]
    return out


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _warn(message: str) -> None:
    print(f"symato demo: WARNING: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------
# Text converters


_NO_SPACE_BEFORE = set(",.;:!?)]}…%”’»")
_NO_SPACE_AFTER = set("([{“‘«")


def detokenize(tokens: list[str]) -> str:
    """Join tokens with spaces except around punctuation (straight quotes alternate)."""
    out: list[str] = []
    glue_next = False
    open_quote = False
    for tok in tokens:
        if tok == '"':
            open_quote = not open_quote
            if open_quote:
                if out:
                    out.append(" ")
                out.append(tok)
                glue_next = True
            else:
                out.append(tok)
            continue
        if out and not glue_next and tok not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(tok)
        glue_next = tok in _NO_SPACE_AFTER
    return "".join(out)


def vlsp_documents(text: str, per_paragraph: int = 5, per_document: int = 20) -> Iterator[str]:
    """Documents of a VLSP POS file: sentences (blank-line separated, one token per line).

    The test set has no document boundaries, so every ``per_document`` consecutive
    sentences make one document, in paragraphs of up to ``per_paragraph`` sentences. A
    sentence without final punctuation (a heading such as "1. Quyền ...") stands alone
    as its own paragraph rather than running into the next sentence.
    """
    sentences = []
    for block in re.split(r"\n\s*\n", text):
        tokens = [line.split("\t")[0].replace("_", " ") for line in block.splitlines()]
        tokens = [t for t in tokens if t.strip()]
        if tokens:
            sentences.append(detokenize(tokens))
    for start in range(0, len(sentences), per_document):
        yield "\n\n".join(_vlsp_paragraphs(sentences[start : start + per_document], per_paragraph))


def _vlsp_paragraphs(sentences: list[str], per_paragraph: int) -> Iterator[str]:
    current: list[str] = []
    for sentence in sentences:
        if not sentence.endswith(_SENTENCE_END):
            if current:
                yield " ".join(current)
            yield sentence
            current = []
            continue
        current.append(sentence)
        if len(current) == per_paragraph:
            yield " ".join(current)
            current = []
    if current:
        yield " ".join(current)


_SENTENCE_END = tuple('.!?…:;"”)»')


class _HtmlText(html.parser.HTMLParser):
    """Visible text of an HTML page with block elements as paragraph breaks."""

    BLOCKS = frozenset(
        {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "td", "th"}
        | {"pre", "table", "ul", "ol", "dl", "br", "title", "blockquote", "section"}
        | {"article", "header", "footer", "caption"}
    )
    SKIP = frozenset(("script", "style", "head", "noscript", "nav"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(page: str) -> str:
    """Paragraphs of visible text of an HTML page, one per block element."""
    parser = _HtmlText()
    parser.feed(page)
    parser.close()
    paras = (p.strip() for p in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paras if p)


_GROFF_ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\(lq"), "“"),
    (re.compile(r"\\\(rq"), "”"),
    (re.compile(r"\\\((aq|cq|oq)"), "'"),
    (re.compile(r"\\\(bu"), "•"),
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),  # strings
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[ ~0]"), " "),
    (re.compile(r"\\[&,/|^%:]"), ""),
    (re.compile(r"\\e"), "\\\\"),
]
_GROFF_BREAKS = {"PP", "P", "LP", "TP", "IP", "sp", "br", "SH", "SS", "RS", "RE", "nf", "fi", "EX"}
_GROFF_TEXT = {"B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB", "SH", "SS", "IP"}


def _groff_inline(text: str) -> str:
    for pattern, repl in _GROFF_ESCAPES:
        text = pattern.sub(repl, text)
    return text


def groff_to_text(source: str) -> str:
    """Readable text of a man page: requests dropped, fonts and escapes resolved."""
    paras: list[list[str]] = [[]]
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            parts = line[1:].split(None, 1)
            req = parts[0] if parts else ""
            if req in _GROFF_BREAKS:
                paras.append([])
            if req in _GROFF_TEXT and len(parts) > 1:
                args = re.findall(r'"([^"]*)"|(\S+)', parts[1])
                words = [a or b for a, b in args]
                if req == "IP":
                    words = words[:1]
                joiner = "" if req in ("BR", "BI", "IB", "IR", "RB", "RI") else " "
                paras[-1].append(_groff_inline(joiner.join(words)))
                if req in ("SH", "SS"):
                    paras.append([])
            continue
        paras[-1].append(_groff_inline(line))
    blocks = (" ".join(w for w in p if w.strip()).strip() for p in paras)
    return "\n\n".join(b for b in blocks if b)


_FTL_PLACEABLE = re.compile(r"\{[^{}]*\}")
_MARKUP = re.compile(r"<[^<>]*>")  # inline HTML in some UI strings
_PROPS_ARG = re.compile(r"%(\d+\$)?[Sdsu]|#\d")


def _ftl_strings(text: str) -> Iterator[str]:
    """Values of a Fluent (.ftl) file: messages, attributes, continuation lines."""
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[:1].isspace():
            body = line.strip()
            if body.startswith(".") and "=" in body:
                if current:
                    yield " ".join(current)
                value = body.split("=", 1)[1].strip()
                current = [value] if value else []
            elif not body.startswith(("[", "*[", "}")):
                current.append(body)
            continue
        if current:
            yield " ".join(current)
        value = line.split("=", 1)[1].strip() if "=" in line else ""
        current = [value] if value else []
    if current:
        yield " ".join(current)


def firefox_documents(xpi: bytes, origin: str) -> Iterator[Doc]:
    """One document per .ftl/.properties file of a language pack, one paragraph per string."""
    import io

    with zipfile.ZipFile(io.BytesIO(xpi)) as zf:
        for name in sorted(zf.namelist()):
            raw = zf.read(name).decode("utf-8", "replace")
            if name.endswith(".ftl"):
                strings = (_FTL_PLACEABLE.sub("", s) for s in _ftl_strings(raw))
            elif name.endswith(".properties"):
                strings = (
                    _PROPS_ARG.sub("", line.split("=", 1)[1])
                    for line in raw.splitlines()
                    if "=" in line and not line.lstrip().startswith(("#", "!"))
                )
            else:
                continue
            paras = [re.sub(r"\s+", " ", _MARKUP.sub("", s)).strip() for s in strings]
            text = "\n\n".join(p for p in paras if p)
            if text:
                yield f"{origin}/{name}", text


# ---------------------------------------------------------------------------------------
# Downloads


def fetch_wheel(pin: dict, cache: Path) -> Path:
    """The pinned wheel from the cache, or from PyPI with ``pip download``; sha256 checked."""
    folder = cache / "pypi"
    path = folder / pin["filename"]
    if not (path.exists() and sha256_of(path) == pin["sha256"]):
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"{pin['name']}=={pin['version']}",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--no-cache-dir",
            "-d",
            str(folder),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise SymatoError(
                f"pip download of {pin['name']}=={pin['version']} failed "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
            )
    digest = sha256_of(path)
    if digest != pin["sha256"]:
        raise SymatoError(f"{path}: sha256 {digest} does not match the pinned {pin['sha256']}")
    return path


def _apt_options(cache: Path) -> list[str]:
    apt = (cache / "apt").resolve()
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    opts = [
        f"Dir::State::Lists={apt / 'lists'}",
        f"Dir::Cache={apt / 'cache'}",
        "Debug::NoLocking=1",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        opts.append("APT::Sandbox::User=root")  # our private folders are root's own
    return [x for opt in opts for x in ("-o", opt)]


def _deb_name(pin: dict) -> str:
    version = pin["version"].split(":", 1)[-1]
    return f"{pin['package']}_{version}_{pin.get('architecture', 'all')}.deb"


def _deb_spec(pin: dict) -> str:
    """``package[:arch]=version`` for apt-get download (an arch-specific pin names its arch)."""
    arch = pin.get("architecture", "all")
    name = pin["package"] if arch == "all" else f"{pin['package']}:{arch}"
    return f"{name}={pin['version']}"


def fetch_debs(pins: list[dict], cache: Path) -> dict[str, Path | str]:
    """Download the pinned .deb files with a private apt state: package -> path or problem."""
    folder = cache / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path | str] = {}
    missing = []
    unique = {pin["package"]: pin for pin in pins}  # one .deb may feed two languages' entries
    for pin in unique.values():
        path = folder / _deb_name(pin)
        if path.exists() and sha256_of(path) == pin["sha256"]:
            found[pin["package"]] = path
        else:
            missing.append(pin)
    if not missing:
        return found
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        for pin in missing:
            found[pin["package"]] = "apt-get or dpkg-deb is not available on this machine"
        return found
    opts = _apt_options(cache)
    update = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True)
    if update.returncode != 0:
        reason = f"apt-get update failed: {update.stderr.strip()[-300:]}"
        for pin in missing:
            found[pin["package"]] = reason
        return found
    for pin in missing:
        spec = _deb_spec(pin)
        proc = subprocess.run(
            ["apt-get", *opts, "download", spec], capture_output=True, text=True, cwd=folder
        )
        got = sorted(folder.glob(f"{pin['package']}_*.deb"))
        got = [p for p in got if sha256_of(p) == pin["sha256"]]
        if proc.returncode != 0 or not got:
            found[pin["package"]] = (
                f"apt-get download {spec} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip()[-300:] or 'sha256 mismatch'}"
            )
            continue
        target = folder / _deb_name(pin)
        if got[0] != target:
            got[0].replace(target)
        found[pin["package"]] = target
    return found


def deb_members(deb: Path, prefix: str, suffixes: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """Files under ``prefix`` of a .deb's data, streamed through ``dpkg-deb --fsys-tarfile``."""
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    members = []
    with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isfile() and name.startswith(prefix) and name.endswith(suffixes):
                fh = tar.extractfile(info)
                if fh is not None:
                    members.append((name, fh.read()))
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SymatoError(f"dpkg-deb --fsys-tarfile {deb} failed: {err.decode()[-300:]}")
    yield from sorted(members)


def deb_copyright(deb: Path, package: str) -> bytes:
    """The package's copyright file (kept next to the demo text as licence evidence)."""
    for _, data in deb_members(deb, f"usr/share/doc/{package}/copyright", ("copyright",)):
        return data
    return b""


def debian_documents(pin: dict, deb: Path) -> Iterator[Doc]:
    """Documents of one pinned Debian package according to its ``kind``."""
    for name, data in deb_members(deb, pin["include"], tuple(pin["suffixes"])):
        origin = f"{pin['package']}:{name}"
        if pin["kind"] == "html":
            yield origin, html_to_text(data.decode("utf-8", "replace"))
        elif pin["kind"] == "man":
            yield origin, groff_to_text(gzip.decompress(data).decode("utf-8", "replace"))
        elif pin["kind"] == "xpi":
            yield from firefox_documents(data, origin)
        else:
            raise SymatoError(f"demo_sources.json: unknown kind {pin['kind']!r} for {origin}")


# ---------------------------------------------------------------------------------------
# Assembly


def assemble(cache: Path, use_apt: bool, language: str = "vi") -> tuple[list[Doc], dict]:
    """All demo documents of ``language`` in a fixed order, plus the manifest describing them."""
    pins = pins_for(load_pins(), language)
    docs: list[Doc] = []
    entries = []
    licences = cache / "licenses"
    licences.mkdir(parents=True, exist_ok=True)
    for pin in pins["pypi"]:
        wheel = fetch_wheel(pin, cache)
        with zipfile.ZipFile(wheel) as zf:
            text = zf.read(pin["member"]).decode("utf-8")
            (licences / f"{pin['name']}.LICENSE").write_bytes(zf.read(pin["license_file"]))
        origin = f"{pin['name']}:{pin['member']}"
        got = [(f"{origin}#{i}", d) for i, d in enumerate(vlsp_documents(text))]
        docs += got
        entries.append(_entry("pypi", pin, "used", got))
    debs = fetch_debs(pins["debian"], cache) if use_apt else {}
    for pin in pins["debian"]:
        where = debs.get(pin["package"], "disabled by config (corpus.demo_apt: false)")
        if isinstance(where, str):
            _warn(f"skipping Debian package {pin['package']}: {where}")
            entries.append(_entry("debian", pin, f"skipped: {where}", []))
            continue
        (licences / f"{pin['package']}.copyright").write_bytes(deb_copyright(where, pin["package"]))
        got = [(o, t) for o, t in debian_documents(pin, where) if t.strip()]
        docs += got
        entries.append(_entry("debian", pin, "used", got))
    if not docs:
        problems = "; ".join(f"{e['name']}: {e['status']}" for e in entries)
        raise SymatoError(f"the {language} demo corpus is empty ({problems})")
    if not any(e["status"] == "used" for e in entries if e["registry"] == "debian"):
        _warn("no Debian package could be used: the demo corpus is the PyPI part only")
    return docs, {"description": pins["description"], "language": language, "sources": entries}


def _entry(registry: str, pin: dict, status: str, docs: list[Doc]) -> dict:
    return {
        "registry": registry,
        "name": pin.get("name", pin.get("package")),
        "language": pin["language"],
        "version": pin["version"],
        "sha256": pin["sha256"],
        "license": pin["license"],
        "content": pin["content"],
        "status": status,
        "documents": len(docs),
        "bytes": sum(len(t.encode("utf-8")) for _, t in docs),
    }


def write_jsonl(path: Path, docs: list[Doc]) -> None:
    """One JSON object per line: {"origin", "text"} (atomic)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for origin, text in docs:
            fh.write(json.dumps({"origin": origin, "text": text}, ensure_ascii=False) + "\n")


def main(argv: list[str]) -> int:
    """``symato demo``: assemble the demo corpus (downloads cached in ``--cache``)."""
    p = argparse.ArgumentParser(
        prog="symato demo",
        description="Assemble the demo corpus from pinned PyPI and Debian packages.",
    )
    p.add_argument(
        "--language",
        choices=LANGUAGES,
        default="vi",
        help="vi: the Vietnamese demo corpus; en: the English originals of the same "
        "documents, a source-language corpus (default: vi)",
    )
    p.add_argument("--cache", type=Path, default=Path("resources/demo"))
    p.add_argument(
        "--apt",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also use the Debian packages (needs apt-get; default: yes)",
    )
    p.add_argument("--out", type=Path, required=True, help="JSON-lines output")
    p.add_argument("--manifest", type=Path, required=True, help="provenance and licences")
    args = p.parse_args(argv)
    docs, manifest = assemble(args.cache, args.apt, args.language)
    manifest["output"] = {
        "file": str(args.out),
        "documents": len(docs),
        "bytes": sum(len(t.encode("utf-8")) for _, t in docs),
    }
    write_jsonl(args.out, docs)
    write_json_atomic(args.manifest, manifest)
    write_text_atomic(args.cache / "README.txt", _README)
    print(f"symato demo ({args.language}): {len(docs)} documents, "
          f"{manifest['output']['bytes']} bytes")
    for e in manifest["sources"]:
        print(f"  {e['name']} {e['version']}: {e['status']} ({e['documents']} documents)")
    return 0


_README = """\
This folder is the cache of `symato demo` (rule demo_corpus).
demo.jsonl    the demo corpus, one document per line ({"origin", "text"})
manifest.json provenance: package, version, sha256, licence, status, size
              (an English corpus, `symato demo --language en`, is written wherever
              its --out/--manifest say, from the same caches)
licenses/     the licence / copyright file of every package used
pypi/, debs/  the downloaded packages (reused on the next run); apt/ is the private apt state
"""
