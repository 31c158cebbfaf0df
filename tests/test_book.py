"""`make book` builds with zero warnings (Sphinx -W turns each warning into a failure)."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_book_builds_without_warnings(tmp_path):
    jb = Path(sys.executable).parent / "jupyter-book"
    r = subprocess.run([str(jb), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    html = tmp_path / "_build" / "html"
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        assert (html / "chapters" / f"{nb.stem}.html").exists(), f"{nb.name} was not rendered"
    assert "warning" not in r.stderr.lower(), r.stderr[-2000:]
    # math renders offline: MathJax is served from the book, not a CDN
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert 'src="../_static/mathjax/tex-chtml.js' in (html / "chapters" / "02_attention.html").read_text()
