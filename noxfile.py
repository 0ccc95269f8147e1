"""Developer sessions: `nox -s tests lint typecheck docs demo benchmarks chaos`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

EXAMPLE_PLUGIN = "./examples/zetafailover-example-plugin"


def _install_test_env(session: nox.Session) -> None:
    session.install("-U", "pip>=25.1")
    session.install("-e", ".", "-e", EXAMPLE_PLUGIN, "--group", "test")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (simulated time, real processes, the example plugin)."""
    _install_test_env(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and the benchmarks."""
    _install_test_env(session)
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """Build docs/ into a static site (site/) with MkDocs; any warning fails the build."""
    session.install("-U", "pip>=25.1")  # dependency groups need pip 25.1
    session.install("--group", "docs")
    session.run("mkdocs", "build", "--strict")


@nox.session
def chaos(session: nox.Session) -> None:
    """Randomized fault runs on real node processes, each audited: `nox -s chaos -- --runs N --seed S`."""
    session.install("-e", ".")
    session.run("python", "-m", "zetafailover.testing.chaos", *(session.posargs or ["--runs", "3"]))


@nox.session
def demo(session: nox.Session) -> None:
    """The Quick start demo (``-- --scenario NAME``, ``-- --list``): the failover story on the simulated world."""
    session.install(".")
    session.run("zetafailover", "demo", *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Every benchmark, into docs/benchmarks/report.json and results.md (``-- --quick``, ``-- --only NAME``)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run_all.py", *session.posargs)
