"""The public API: everything in __all__ resolves, and the runtime never imports the test harness."""

from __future__ import annotations

import subprocess
import sys

import zetafailover


def test_every_public_name_resolves() -> None:
    missing = [name for name in zetafailover.__all__ if not hasattr(zetafailover, name)]
    assert not missing
    assert len(set(zetafailover.__all__)) == len(zetafailover.__all__)


def test_runtime_does_not_import_the_test_harness() -> None:
    code = (
        "import sys, zetafailover, zetafailover.cli, zetafailover.assemble; "
        "print(sorted(m for m in sys.modules if m.startswith('zetafailover.testing')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_imports_without_posix_only_modules_and_the_spool_says_why_it_cannot_run() -> None:
    """On Windows (no fcntl, termios, pty, pwd, grp, resource) the package and its CLI still import; the spool
    refuses with a clear error at first use instead of an ImportError at import."""
    code = (
        "import sys, tempfile, pathlib\n"
        "for m in ('fcntl', 'termios', 'pty', 'tty', 'pwd', 'grp', 'resource'):\n"
        "    sys.modules[m] = None\n"
        "import zetafailover, zetafailover.cli\n"
        "from zetafailover.spool.directory import DirectorySpool\n"
        "try:\n"
        "    DirectorySpool(pathlib.Path(tempfile.mkdtemp()) / 'spool', node='x').advance_term(1)\n"
        "except zetafailover.UnsupportedPlatformError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "flock(2)" in out.stdout
