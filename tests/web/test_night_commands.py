"""The night's commands as an operator runs them: import-fleet, pipeline run/status, plan."""

import json
from datetime import UTC, datetime

from fulfilment.core.db import session_scope
from fulfilment.demo.city import build_demo

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def _demo(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return build_demo(s, leaders=10, orders=80, now=NOW).delivery_date.isoformat()


def test_pipeline_run_then_status_and_plan_show(app, runner, monkeypatch):
    """`pipeline run` cuts off, plans, publishes and settles; `pipeline status --json` shows
    the four steps done; `plan show --json` lists routes with local ETAs and no unassigned stop; a re-plan is
    a new draft version that `plan publish` publishes."""
    monkeypatch.delenv("GROUPBUY_REDIS_URL", raising=False)
    monkeypatch.setenv("GROUPBUY_WORKERS", "1")
    day = _demo(app)
    ran = runner.invoke(
        args=["pipeline", "run", "--region", "SH", "--date", day, "--seconds", "0.3"]
    )
    assert ran.exit_code == 0, ran.output
    assert "succeeded" in ran.output
    status = json.loads(
        runner.invoke(args=["pipeline", "status", "--region", "SH", "--json"]).output
    )
    assert [(s["step"], s["state"]) for s in status[0]["steps"]] == [
        ("cutoff", "done"),
        ("plan", "done"),
        ("publish", "done"),
        ("settle", "done"),
    ]
    shown = json.loads(
        runner.invoke(args=["plan", "show", "--region", "SH", "--date", day, "--json"]).output
    )
    assert shown["status"] == "published" and shown["unassigned"] == []
    first_stop = shown["routes"][0]["stops"][0]
    assert first_stop["arrival"].startswith(day) and first_stop["arrival"].endswith("+08:00")
    replanned = runner.invoke(
        args=["plan", "--region", "SH", "--date", day, "--seconds", "0.3", "--trunk-seconds", "0.5"]
    )
    assert replanned.exit_code == 0 and "draft plan v2" in replanned.output
    published = runner.invoke(args=["plan", "publish", "--region", "SH", "--date", day])
    assert published.exit_code == 0 and "published plan v2" in published.output


def test_import_fleet_refuses_a_bad_file_naming_line_and_field(app, runner, tmp_path):
    """A bad fleet file: exit 1, each error as FILE:line N: field: message, nothing imported."""
    _demo(app)
    path = tmp_path / "fleet.csv"
    path.write_text(
        "code,region,home,kind,weight_kg,volume_l,crates,zones,shift_start,shift_end\n"
        "X1,SH,SH-WH1,trunk,5,30,600,ambient,03:00,09:00\n"
        "X2,SH,SH-WH1,lorry,5,30,600,ambient,03:00,09:00\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["import-fleet", str(path)])
    assert result.exit_code == 1
    assert "fleet.csv:line 3: kind:" in result.output
    path.write_text(path.read_text(encoding="utf-8").replace("lorry", "trunk"), encoding="utf-8")
    done = runner.invoke(args=["import-fleet", str(path)])
    assert done.exit_code == 0 and "2 vehicles added" in done.output


def test_a_bad_date_is_a_clear_error_naming_date_on_every_night_command(app, runner):
    """`plan`, `plan show`, `plan publish`, `pipeline run` and `pipeline status` with a date that
    is not YYYY-MM-DD: exit 2 with a usage error naming --date, no traceback."""
    _demo(app)
    for args in (
        ["plan", "--region", "SH", "--date", "2026-13-45"],
        ["plan", "show", "--region", "SH", "--date", "tomorrow"],
        ["plan", "publish", "--region", "SH", "--date", "2026-02-30"],
        ["pipeline", "run", "--region", "SH", "--date", "24.11.2026"],
        ["pipeline", "status", "--date", "2026-11-24x"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 2, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Invalid value for '--date'" in result.output, (args, result.output)
        assert "YYYY-MM-DD" in result.output


def test_pipeline_status_flags_a_run_whose_process_stopped_answering(app, runner):
    """A run left `running` by a process that died (its heartbeat past the TTL) is flagged
    ABANDONED, with the scheduler taking it over, in text and JSON; a live claimer's run is not
    (issue 22, item 9: the old error was shown as if the run were still going)."""
    from datetime import timedelta

    from fulfilment.catalogue.sites import get_region
    from fulfilment.night.pipeline import claim_run

    day = _demo(app)
    now = datetime.now(UTC)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        region = get_region(s, "SH")
        run, refused = claim_run(
            s,
            region=region,
            delivery_date=datetime.fromisoformat(day).date(),
            claimer="host-a:123",
            now=now - timedelta(hours=1),
        )
        assert refused is None
        run.error = "Execution abc not found in Redis"
    shown = runner.invoke(args=["pipeline", "status", "--region", "SH"])
    assert "running ABANDONED (its process stopped answering" in shown.output
    status = json.loads(
        runner.invoke(args=["pipeline", "status", "--region", "SH", "--json"]).output
    )
    assert status[0]["abandoned"] is True
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        claim_run(
            s,
            region=get_region(s, "SH"),
            delivery_date=datetime.fromisoformat(day).date(),
            claimer="host-b:456",
            now=now,
        )
    again = runner.invoke(args=["pipeline", "status", "--region", "SH"])
    assert "ABANDONED" not in again.output
