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
