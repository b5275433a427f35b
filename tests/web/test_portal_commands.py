"""The portal's commands: create-user, refunds export, and demo --reset's guard."""

import csv

from portal_factories import PASSWORD, login, make_portal_world
from sqlalchemy import select

from fulfilment.accounts.models import Role, User
from fulfilment.core.db import session_scope
from fulfilment.core.models import Refund, RefundState
from web import create_app


def test_create_user_reads_the_password_from_stdin_and_can_sign_in(app, runner, client):
    """`create-user NAME --role leader --leader CODE --password-stdin` makes an account that signs in."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        make_portal_world(s)
    result = runner.invoke(
        args=["create-user", "zhang", "--role", "leader", "--leader", "L2", "--password-stdin"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        user = s.scalar(select(User).where(User.username == "zhang"))
        assert user.role == Role.LEADER and user.leader.code == "L2"
        assert "a long enough password" not in user.password_hash
    assert login(client, "zhang", "a long enough password").headers["Location"] == "/leader/today"


def test_create_user_errors_name_the_field(app, runner):
    """A leader without --leader, an unknown leader, or a short password exit 1 naming the field."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        make_portal_world(s)
    cases = [
        (["create-user", "a", "--role", "leader", "--password-stdin"], PASSWORD, "leader"),
        (
            ["create-user", "a", "--role", "leader", "--leader", "NOPE", "--password-stdin"],
            PASSWORD,
            "NOPE",
        ),
        (["create-user", "a", "--role", "admin", "--password-stdin"], "short", "password"),
        (
            ["create-user", "leader1", "--role", "admin", "--password-stdin"],
            PASSWORD,
            "already taken",
        ),
    ]
    for args, password, word in cases:
        result = runner.invoke(args=args, input=password + "\n")
        assert result.exit_code == 1 and word in result.output, result.output


def test_refunds_export_command_writes_csv_and_marks_exported(app, runner, tmp_path):
    """`refunds export --wave ID --output FILE` writes the owed refunds and marks them exported."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_portal_world(s)
        s.add(
            Refund(
                order_line_id=world.orders["M2"].line_ids[0], amount_cents=250, reason="shortage"
            )
        )
    out = tmp_path / "refunds.csv"
    result = runner.invoke(
        args=["refunds", "export", "--wave", str(world.wave.id), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["reason"], r["amount_yuan"]) for r in rows] == [("shortage", "2.50")]
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(Refund.state)) == RefundState.EXPORTED
    missing = runner.invoke(args=["refunds", "export", "--wave", "999"])
    assert missing.exit_code == 1 and "wave 999" in missing.output


def test_refunds_export_to_a_folder_that_cannot_take_it_marks_nothing(app, runner, tmp_path):
    """`--output` in a folder that does not exist: refused before the claim (exit 1, naming
    the folder), the refund stays owed, and the export to a good path then hands it over;
    before, the refund was marked exported and the file never written."""
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_portal_world(s)
        s.add(
            Refund(
                order_line_id=world.orders["M2"].line_ids[0], amount_cents=250, reason="shortage"
            )
        )
    wave = ["refunds", "export", "--wave", str(world.wave.id), "--output"]
    refused = runner.invoke(args=[*wave, str(tmp_path / "no-such-folder" / "refunds.csv")])
    assert refused.exit_code == 1 and "no-such-folder" in refused.output, refused.output
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(Refund.state)) == RefundState.OWED
    out = tmp_path / "refunds.csv"
    done = runner.invoke(args=[*wave, str(out)])
    assert done.exit_code == 0, done.output
    assert [r["amount_yuan"] for r in csv.DictReader(out.open(encoding="utf-8"))] == ["2.50"]
    assert not list(tmp_path.glob(".*.part"))


def test_refunds_export_to_stdout_prints_nothing_it_did_not_commit(app, runner, monkeypatch):
    """Printing to standard output happens after the commit: an export whose transaction fails
    prints no row (the payment side never sees a refund still owed), a run that commits prints
    them all, and `--batch` lists that export's rows again."""
    import web.cli.accounts as accounts
    from fulfilment.core.errors import FulfilmentError

    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        world = make_portal_world(s)
        s.add(
            Refund(
                order_line_id=world.orders["M2"].line_ids[0], amount_cents=250, reason="shortage"
            )
        )
    real = accounts.export_refunds

    def export_then_fail(session, **kwargs):
        real(session, **kwargs)
        raise FulfilmentError("the commit did not happen")

    monkeypatch.setattr(accounts, "export_refunds", export_then_fail)
    failed = runner.invoke(args=["refunds", "export", "--wave", str(world.wave.id)])
    assert failed.exit_code == 1
    assert "shortage" not in failed.stdout and "refund_id" not in failed.stdout
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(Refund.state)) == RefundState.OWED
    monkeypatch.setattr(accounts, "export_refunds", real)
    done = runner.invoke(args=["refunds", "export", "--wave", str(world.wave.id)])
    assert done.exit_code == 0
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert [(r["reason"], r["amount_yuan"]) for r in rows] == [("shortage", "2.50")]
    again = runner.invoke(
        args=["refunds", "export", "--wave", str(world.wave.id), "--batch", rows[0]["export_batch"]]
    )
    assert again.exit_code == 0
    assert [r["refund_id"] for r in csv.DictReader(again.stdout.splitlines())] == [
        rows[0]["refund_id"]
    ]


def test_demo_reset_is_refused_outside_demo_dev_and_test(tmp_path):
    """With GROUPBUY_ENV=production, `demo --reset` refuses and drops nothing."""
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    app = create_app(
        {
            "GROUPBUY_ENV": "production",
            "GROUPBUY_SECRET_KEY": "s" * 32,
            "GROUPBUY_DATABASE_URL": url,
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
        }
    )
    from fulfilment.core.migrate import upgrade

    upgrade(app.extensions["groupbuy"]["engine"])
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        make_portal_world(s)
    result = app.test_cli_runner().invoke(args=["demo", "--reset"])
    assert result.exit_code == 1 and "GROUPBUY_ENV=production" in result.output
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        assert s.scalar(select(User.id).limit(1)) is not None
    app.extensions["groupbuy"]["engine"].dispose()


def test_demo_prints_one_login_per_role_that_works(tmp_path):
    """`demo` creates one account per role plus a second leader and prints logins that sign in."""
    app = create_app(
        {
            "GROUPBUY_ENV": "demo",
            "GROUPBUY_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
        }
    )
    result = app.test_cli_runner().invoke(args=["demo", "--leaders", "6", "--orders", "60"])
    assert result.exit_code == 0, result.output
    logins = {}
    for line in result.output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in {r.value for r in Role}:
            logins[parts[0]] = (parts[1], parts[2])
    assert sorted(r for _, r in logins.values()) == sorted(
        ["leader", "leader", "pickup_staff", "warehouse", "dispatcher", "admin"]
    )
    client = app.test_client()
    password, _ = logins["leader2"]
    assert login(client, "leader2", password).headers["Location"] == "/leader/today"
    assert client.get("/leader/today").status_code == 200
    app.extensions["groupbuy"]["engine"].dispose()
