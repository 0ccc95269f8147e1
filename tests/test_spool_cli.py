"""The spool's CLI subcommands, called through argparse as the real command does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from test_spool_basic import small_doc
from zetafailover.spool import DirectorySpool
from zetafailover.spool.commands import register


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[cluster]\nname = "c"\nstore = "{tmp_path / "store"}"\n\n[node]\nname = "alpha"\n')
    return path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="zetafailover")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_send_jobs_job_cancel_received(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = small_doc(tmp_path / "d.tif")
    assert run("send", str(doc), "--to", "+1 555 0100", "--config", str(config)) == 0
    job_id = capsys.readouterr().out.strip()
    spool = DirectorySpool(tmp_path / "store" / "spool", node="x")
    assert spool.get(job_id).number == "+15550100"
    assert run("jobs", "--json", "--config", str(config)) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["id"] for j in listed] == [job_id] and listed[0]["state"] == "queued"
    assert run("jobs", "--state", "sent", "--config", str(config)) == 0
    assert capsys.readouterr().out == ""
    assert run("job", job_id, "--config", str(config)) == 0
    assert "submitted" in capsys.readouterr().out
    assert run("cancel", job_id, "--config", str(config)) == 0
    assert "cancelled" in capsys.readouterr().out
    assert run("job", job_id, "--json", "--config", str(config)) == 0
    assert [h["state"] for h in json.loads(capsys.readouterr().out)["history"]] == ["queued", "cancelled"]
    spool.fax_received("m0", "+1666", [b"x"], True, 0)
    assert run("received", "--json", "--config", str(config)) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "received"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("send", "DOC", "--to", "123;ATH"), "';'"),
        (("send", "MISSING", "--to", "123"), "cannot read"),
        (("job", "../../etc"), "not valid"),
        (("cancel", "J20250101T120000-0123456789"), "no such job"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    doc = small_doc(tmp_path / "d.tif")
    argv = tuple(str(doc) if a == "DOC" else str(tmp_path / "nope.tif") if a == "MISSING" else a for a in argv)
    assert run(*argv, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err.startswith("zetafailover: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_bad_config_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("jobs", "--config", str(tmp_path / "missing.toml")) == 2
    assert "cannot read the config file" in capsys.readouterr().err
