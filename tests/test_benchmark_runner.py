"""The benchmark runner (benchmarks/run_all.py), the heartbeat CPU benchmark and the chart hook (docs/hooks)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


run_all = _load("zf_bench_run_all", ROOT / "benchmarks" / "run_all.py")
heartbeat_cpu = _load("zf_bench_heartbeat_cpu", ROOT / "benchmarks" / "heartbeat_cpu.py")
charts = _load("zf_docs_hook_charts", ROOT / "docs" / "hooks" / "charts.py")


def takeover_result(profile: str = "lab", samples: tuple[float, ...] = (0.95, 0.97, 1.05)) -> dict[str, Any]:
    hb, timeout = (0.1, 1.0) if profile == "lab" else (0.5, 5.0)
    ordered = sorted(samples)
    return {
        "benchmark": "takeover",
        "store": "file",
        "profile": profile,
        "heartbeat_interval": hb,
        "timeout": timeout,
        "trials": len(samples),
        "p50_s": ordered[len(ordered) // 2],
        "p99_s": ordered[-1],
        "max_s": ordered[-1],
        "overhead_target_s": round(hb + 0.1, 4),
        "verdict_to_active_p99_s": 0.01,
        "samples_s": list(samples),
    }


# ----------------------------------------------------------------------------------------- planning


def test_select_by_name_and_group_and_refuses_unknown_names() -> None:
    assert [b.name for b in run_all.select([])] == [b.name for b in run_all.BENCHMARKS]
    assert [b.name for b in run_all.select(["takeover"])] == [
        "takeover-file-lab",
        "takeover-file-fast",
        "takeover-etcd-fast",
    ]
    assert [b.name for b in run_all.select(["spool", "takeover-file-lab"])] == ["takeover-file-lab", "spool"]
    with pytest.raises(ValueError, match=r"--only nope: unknown; known: .*heartbeat_cpu"):
        run_all.select(["nope"])


def test_every_benchmark_script_exists_except_the_optional_modem_one() -> None:
    for bench in run_all.BENCHMARKS:
        assert bench.command(quick=True)[:2] == ["python", f"benchmarks/{bench.script}"]
        if bench.name != "modem":
            assert (ROOT / "benchmarks" / bench.script).is_file(), bench.script
            assert "--json" in bench.args and "--json" in bench.quick_args


def test_skip_reasons_name_the_script_the_program_and_the_package(tmp_path: Path) -> None:
    bench = run_all.Benchmark("m", "m", "m.py", ("--json",), ("--json",), 10, needs=("iaxmodem",), apt=("iaxmodem",))
    assert run_all.skip_reason(bench, False, bench_dir=tmp_path) == "benchmarks/m.py does not exist (yet)"
    (tmp_path / "m.py").write_text("")
    reason = run_all.skip_reason(bench, False, bench_dir=tmp_path, has_program=lambda p: False)
    assert reason == "iaxmodem not installed (apt-get install iaxmodem)"
    assert run_all.skip_reason(bench, False, bench_dir=tmp_path, has_program=lambda p: True) is None
    slow = run_all.Benchmark("s", "s", "m.py", (), (), 10, full_only=True)
    assert "--quick" in (run_all.skip_reason(slow, True, bench_dir=tmp_path) or "")
    assert run_all.skip_reason(slow, False, bench_dir=tmp_path) is None


# ------------------------------------------------------------------------------------------ parsing


def test_parse_output_takes_the_last_json_object_and_refuses_none() -> None:
    noisy = 'progress 1\n{"a": 1}\nnot json {\n{"b": 2}\n'
    assert run_all.parse_output(noisy) == {"b": 2}
    assert run_all.parse_output(json.dumps({"c": [1, 2]}, indent=2)) == {"c": [1, 2]}
    with pytest.raises(ValueError, match="no JSON object in the output"):
        run_all.parse_output("[1, 2]\nfinished\n")


def test_last_error_is_the_exception_line_of_the_last_traceback() -> None:
    stderr = textwrap.dedent(
        """\
        {"level":"warn","msg":"etcd noise"}
        Traceback (most recent call last):
          File "x.py", line 1, in <module>
            main()
        RuntimeError: fax1 exited with 1:
        --- fax1.log
        """
    )
    assert run_all.last_error(stderr) == "RuntimeError: fax1 exited with 1:"
    assert run_all.last_error("one\ntwo\n") == "two"
    assert run_all.last_error("") == "(no output on stderr)"


# ------------------------------------------------------------------------------------ report, tables


def test_report_merges_a_partial_run_over_the_previous_one_and_extracts_the_samples() -> None:
    old = run_all.Outcome("ok", ["python", "benchmarks/takeover.py"], "2024-01-01T00:00:00Z", 10.0, takeover_result())
    first = run_all.build_report({"takeover-file-lab": old}, quick=False, git={"commit": "aaa"})
    new = run_all.Outcome("failed", ["python", "benchmarks/spool.py"], "2024-01-02T00:00:00Z", 1.0, reason="boom")
    second = run_all.build_report({"spool": new}, quick=True, previous=first, git={"commit": "bbb"})
    assert list(second["benchmarks"]) == ["takeover-file-lab", "spool"]  # run order, not insertion order
    assert second["benchmarks"]["takeover-file-lab"]["commit"] == "aaa"  # kept, with its own commit
    assert second["benchmarks"]["spool"] == {
        "status": "failed",
        "command": ["python", "benchmarks/spool.py"],
        "measured_at": "2024-01-02T00:00:00Z",
        "seconds": 1.0,
        "reason": "boom",
        "commit": "bbb",
        "quick": True,
    }
    assert second["takeover_samples"] == [
        {
            "name": "takeover-file-lab",
            "store": "file",
            "profile": "lab",
            "heartbeat_interval": 0.1,
            "timeout": 1.0,
            "target_p99_s": 1.2,
            "samples_s": [0.95, 0.97, 1.05],
        }
    ]


def test_markdown_marks_the_target_and_escapes_failure_reasons() -> None:
    inside = run_all.Outcome("ok", ["python", "t"], "now", 1, takeover_result("lab", (0.95, 1.1)))
    outside = run_all.Outcome("ok", ["python", "t"], "now", 1, takeover_result("fast", (5.0, 5.7)))
    failed = run_all.Outcome("failed", ["python", "s"], "now", 1, reason="exit status 1: a | b\nmore")
    report = run_all.build_report(
        {"takeover-file-lab": inside, "takeover-file-fast": outside, "spool": failed},
        quick=True,
        git={"commit": "0123456789abcdef", "dirty": True},
        machine={"cpus": 2},
    )
    page = run_all.results_markdown(report)
    assert "at commit `0123456789ab` (with local changes), **quick mode**" in page
    assert "| file | `lab` | 0.1 s / 1 s | 2 | 1.100 s | 1.100 s | 1.100 s | ≤ 1.200 s ✔ | 0.010 s |" in page
    assert "| file | `fast` | 0.5 s / 5 s | 2 | 5.700 s | 5.700 s | 5.700 s | ≤ 5.600 s ✘ | 0.010 s |" in page
    assert "| spool | failed: exit status 1: a \\| b more | now | `0123456789ab` |" in page
    assert f"]({run_all.CHART_NAME})" in page


def test_spool_heartbeat_and_channels_tables() -> None:
    outcomes = {
        "heartbeat_cpu": run_all.Outcome(
            "ok",
            [],
            "now",
            1,
            {
                "profile": "lab",
                "roles": {
                    "active": {"cpu_percent": 2.5, "user_percent": 2.0, "system_percent": 0.5},
                    "standby": {"cpu_percent": 3.25},
                },
            },
        ),
        "spool": run_all.Outcome(
            "ok",
            [],
            "now",
            1,
            {
                "workers": 4,
                "directory_jobs_per_s": 463.7,
                "sqlite_jobs_per_s": 628.9,
                "ratio": 0.737,
                "latency": {
                    "directory": {"submit": {"p50_ms": 3.766, "p99_ms": 7.0}},
                    "sqlite": {"submit": {"p50_ms": 0.22, "p99_ms": 79.1}},
                },
                "processes": {"directory_jobs_per_s": 793.5, "sqlite_jobs_per_s": 1173.9, "ratio": 0.676},
                "file_system_us": {"mkdir_us": 36.1, "create_file_us": 112.8, "overwrite_fdatasync_us": 107.2},
            },
        ),
        "channels": run_all.Outcome(
            "ok",
            [],
            "now",
            1,
            {
                "channels": 120,
                "throughput": {"pages_per_s": 250.0, "peak": 120},
                "takeover": {
                    "profile": "lab",
                    "idle": {"active": {"median_s": 1.06}},
                    "busy": {"active": {"median_s": 1.136}},
                    "ratio_busy_idle": {"active": 1.07},
                    "meets_target": {"active": True},
                    "target_ratio": 1.1,
                },
            },
        ),
    }
    page = run_all.results_markdown(run_all.build_report(outcomes, quick=False))
    assert "| active (renews) | 2.50 % | 2.00 % / 0.50 % |" in page
    assert "| standby (reads) | 3.25 % | – / – |" in page
    assert "| directory spool, 4 workers | 463.7 jobs/s |" in page
    assert "| submit latency p50 / p99: directory · SQLite | 3.77 / 7.00 ms · 0.22 / 79.10 ms |" in page
    assert "claim latency" not in page  # no figures, no row
    assert "| 4 processes instead of threads: directory / SQLite (ratio) | 793.5 / 1173.9 jobs/s (0.676) |" in page
    assert "overwrite + fdatasync · link + folder fsync | 36 µs · 113 µs · 107 µs · – |" in page
    assert "| throughput, 120 channels | 250.0 pages/s (peak 120 calls) |" in page
    assert "1.060 s → 1.136 s, ratio 1.07 ✔ (target ≤ 1.1)" in page


def test_load_previous_names_the_file_when_it_is_not_a_report(tmp_path: Path) -> None:
    assert run_all.load_previous(tmp_path) is None
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"report\.json: not valid JSON"):
        run_all.load_previous(tmp_path)
    (tmp_path / "report.json").write_text("[]")
    with pytest.raises(ValueError, match="not a benchmark report"):
        run_all.load_previous(tmp_path)


# ------------------------------------------------------------------------------------ the whole runner


FAKE_TAKEOVER = f"import json; print('warming up'); print(json.dumps({takeover_result()!r}))"
FAKE_FAILING = "import sys; print('{\"partial\"', flush=True); sys.exit('ValueError: the spool broke')"


def test_runner_runs_skips_and_records_failures_then_merges_only_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "fake_takeover.py").write_text(FAKE_TAKEOVER)
    (bench_dir / "fake_failing.py").write_text(FAKE_FAILING)
    benchmarks = (
        run_all.Benchmark("takeover-file-lab", "takeover", "fake_takeover.py", ("--json",), ("--json",), 60),
        run_all.Benchmark("broken", "broken", "fake_failing.py", (), (), 60),
        run_all.Benchmark("needs", "needs", "fake_takeover.py", (), (), 60, needs=("no-such-program-zf",), apt=("x",)),
    )
    monkeypatch.setattr(run_all, "BENCHMARKS", benchmarks)
    monkeypatch.setattr(run_all, "BENCH_DIR", bench_dir)
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    out = tmp_path / "out"
    assert run_all.main(["--out-dir", str(out)]) == 1  # one benchmark failed
    report = json.loads((out / "report.json").read_text())
    entries = report["benchmarks"]
    assert entries["takeover-file-lab"]["status"] == "ok"
    assert entries["takeover-file-lab"]["result"]["samples_s"] == [0.95, 0.97, 1.05]
    assert entries["broken"]["status"] == "failed"
    assert entries["broken"]["reason"] == "exit status 1: ValueError: the spool broke"
    assert entries["needs"] == {**entries["needs"], "status": "skipped"}
    assert "no-such-program-zf not installed" in entries["needs"]["reason"]
    assert report["takeover_samples"][0]["samples_s"] == [0.95, 0.97, 1.05]
    assert "| file | `lab` |" in (out / "results.md").read_text()
    # --only replaces one entry and keeps the others
    (bench_dir / "fake_failing.py").write_text("print('{\"fixed\": true}')")
    assert run_all.main(["--out-dir", str(out), "--only", "broken"]) == 0
    merged = json.loads((out / "report.json").read_text())["benchmarks"]
    assert merged["broken"]["result"] == {"fixed": True}
    assert merged["takeover-file-lab"] == entries["takeover-file-lab"]
    # --render-only rewrites the page from the report without running anything
    page = (out / "results.md").read_text()
    (out / "results.md").unlink()
    assert run_all.main(["--out-dir", str(out), "--render-only"]) == 0
    assert (out / "results.md").read_text() == page
    # the chart hook draws the runner's report
    svg = ET.fromstring(charts.takeover_svg(charts.load_series(out / "report.json")))
    assert len(svg.findall(f".//{SVG}circle")) == 3


def test_a_benchmark_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "hang.py").write_text("import time; time.sleep(60)")
    bench = run_all.Benchmark("hang", "hang", "hang.py", (), (), 0.5)
    outcome = run_all.run_one(bench, False, root=tmp_path)
    assert outcome.status == "failed"
    assert outcome.reason.startswith("timed out after 0.5 s")


# ------------------------------------------------------------------------------------------ heartbeat CPU


def test_rates_from_two_proc_samples() -> None:
    a = heartbeat_cpu.ProcSample(10.0, 1.0, 0.5, 100, 10, 4096, 7, 3)
    b = heartbeat_cpu.ProcSample(20.0, 1.3, 0.6, 600, 110, 4096 + 10240, 107, 3)
    r = heartbeat_cpu.rates(a, b)
    assert r["cpu_percent"] == 4.0
    assert r["user_percent"] == 3.0
    assert r["system_percent"] == 1.0
    assert r["read_syscalls_per_s"] == 50.0
    assert r["write_syscalls_per_s"] == 10.0
    assert r["write_kib_per_s"] == 1.0
    assert r["ctx_switches_per_s"] == 10.0
    with pytest.raises(ValueError, match="time order"):
        heartbeat_cpu.rates(b, a)


def test_sample_reads_this_process() -> None:
    first = heartbeat_cpu.sample(heartbeat_cpu.os.getpid())
    sum(i * i for i in range(300_000))  # burn a few clock ticks
    last = heartbeat_cpu.sample(heartbeat_cpu.os.getpid())
    assert last.cpu_user_s + last.cpu_system_s >= first.cpu_user_s + first.cpu_system_s > 0
    assert last.read_syscalls >= first.read_syscalls > 0
    assert first.threads >= 1


@pytest.mark.realprocess
def test_heartbeat_cpu_measures_a_real_pair() -> None:
    result = heartbeat_cpu.run("lab", seconds=2.0, warmup=0.5)
    roles = result["roles"]
    assert set(roles) == {"active", "standby", "idle"}
    assert 3.0 <= result["renews_per_s"] <= 12.0  # 10 a second, with room for a loaded machine
    assert roles["active"]["cpu_s"] > 0 and roles["standby"]["cpu_s"] > 0
    assert roles["active"]["write_syscalls_per_s"] > 5  # every renew writes the heartbeat
    assert roles["idle"]["cpu_percent"] < roles["standby"]["cpu_percent"]


# ------------------------------------------------------------------------------------------------ chart


SERIES = [
    {
        "name": "takeover-file-lab",
        "store": "file",
        "profile": "lab",
        "heartbeat_interval": 0.1,
        "timeout": 1.0,
        "target_p99_s": 1.2,
        "samples_s": [0.91, 0.96, 0.97, 1.13],
    },
    {
        "name": "takeover-etcd-fast",
        "store": "etcd",
        "profile": "fast",
        "heartbeat_interval": 0.5,
        "timeout": 5.0,
        "target_p99_s": 5.6,
        "samples_s": [5.1, 5.2],
    },
]


def test_chart_has_a_panel_per_series_a_dot_per_sample_and_the_bound_lines() -> None:
    text = charts.takeover_svg(SERIES)
    assert charts.takeover_svg(SERIES) == text  # deterministic
    svg = ET.fromstring(text)
    assert len(svg.findall(f".//{SVG}circle")) == 6
    labels = [t.text or "" for t in svg.iter(f"{SVG}text")]
    assert "file store · lab (heartbeat 0.1 s, timeout 1 s) · 4 takeovers" in labels
    assert "etcd store · fast (heartbeat 0.5 s, timeout 5 s) · 2 takeovers" in labels
    assert "p99 target 1.2 s" in labels and "timeout 5 s" in labels
    assert any(label.endswith(" s") and label[0].isdigit() for label in labels)  # axis ticks in seconds
    dashed = [line for line in svg.iter(f"{SVG}line") if line.get("stroke-dasharray")]
    assert len(dashed) == 4  # timeout and target in each panel
    # every dot lies inside the plot area
    for dot in svg.iter(f"{SVG}circle"):
        assert charts.LEFT <= float(dot.get("cx", "-1")) <= charts.WIDTH - charts.RIGHT


def test_chart_without_samples_says_how_to_get_them() -> None:
    svg = ET.fromstring(charts.takeover_svg([]))
    assert any("run python benchmarks/run_all.py" in (t.text or "") for t in svg.iter(f"{SVG}text"))


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert charts.nice_ticks(0.91, 1.2) == [0.9, 1.0, 1.1, 1.2]
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert charts.nice_ticks(4.9, 5.6)[0] <= 4.9 and charts.nice_ticks(4.9, 5.6)[-1] >= 5.6
    with pytest.raises(ValueError, match="low < high"):
        charts.nice_ticks(1.0, 1.0)


def test_load_series_names_the_file_and_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    assert charts.load_series(path) == []
    path.write_text("{")
    with pytest.raises(ValueError, match=r"report\.json: cannot read the benchmark report"):
        charts.load_series(path)
    path.write_text(json.dumps({"takeover_samples": [{**SERIES[0], "timeout": "1"}]}))
    with pytest.raises(ValueError, match=r"takeover_samples\[0\]: timeout must be a positive number, not '1'"):
        charts.load_series(path)


def _site(tmp_path: Path, report: str | None) -> Path:
    docs = tmp_path / "docs"
    (docs / "benchmarks").mkdir(parents=True)
    (docs / "index.md").write_text("# Bench\n\n![chart](benchmarks/takeover-times.svg)\n")
    if report is not None:
        (docs / "benchmarks" / "report.json").write_text(report)
    hook = ROOT / "docs" / "hooks" / "charts.py"
    (tmp_path / "mkdocs.yml").write_text(
        f"site_name: t\nstrict: true\nhooks:\n  - {hook}\nnav:\n  - Home: index.md\n"
        "validation:\n  links:\n    not_found: warn\n    unrecognized_links: warn\n"
    )
    return tmp_path


def _build(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=project,
    )


def test_strict_build_links_the_generated_chart_and_fails_on_a_corrupt_report(tmp_path: Path) -> None:
    project = _site(tmp_path / "good", json.dumps({"takeover_samples": SERIES}))
    done = _build(project)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr
    svg = ET.parse(project / "site" / "benchmarks" / "takeover-times.svg").getroot()
    assert len(svg.findall(f".//{SVG}circle")) == 6
    assert 'src="benchmarks/takeover-times.svg"' in (project / "site" / "index.html").read_text()
    assert not (project / "docs" / "benchmarks" / "takeover-times.svg").exists()  # nothing written into docs/
    bad = _build(_site(tmp_path / "bad", "{broken"))
    assert bad.returncode != 0
    assert "report.json: cannot read the benchmark report" in bad.stderr


def test_the_site_config_registers_the_hook_and_keeps_it_out_of_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert "hooks:\n  - docs/hooks/charts.py" in config
    assert "exclude_docs: |\n  hooks/" in config
    assert "benchmarks/results.md" in config and "deployment.md" in config
