"""Developer sessions. Every session installs with constraints.txt so torch stays the pinned CPU wheel."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
ENGINES = ("spark", "ray", "dask", "torch", "mpi", "tensorflow", "slurm", "databricks", "k8s")
FIND_LINKS = ["--find-links", "/opt/wheels"] if os.path.isdir("/opt/wheels") else []


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install(*FIND_LINKS, "-c", "constraints.txt", "-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Every test, engines included (what CI runs)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """Tests that start no engine."""
    _install(session, "test")
    session.run("pytest", "-m", " and ".join(f"not {e}" for e in ENGINES), *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("engine", list(ENGINES))
def engine(session: nox.Session, engine: str) -> None:
    """One engine's tests: `nox -s "engine(engine='spark')"`."""
    _install(session)
    session.run("pytest", "-m", engine, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.install("mypy")
    session.run("mypy", "src/sdk/flyte", "src/flyteplugins")


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run every example script (notebooks are run by the tests)."""
    _install(session)
    for path in sorted(os.listdir("examples")):
        if path.endswith(".py"):
            session.run("python", os.path.join("examples", path))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    _install(session)
    session.run("python", "-m", "benchmarks", *session.posargs)
