"""The `groupbuy` console script itself."""

import os
import subprocess
import sys
from pathlib import Path

COMMANDS = {
    "api-client",
    "commission",
    "create-user",
    "crates",
    "cutoff",
    "db",
    "demo",
    "import-fleet",
    "import-orders",
    "import-products",
    "pipeline",
    "plan",
    "print",
    "refunds",
    "routes",
    "run",
    "scheduler",
    "webhooks",
    "shell",
    "worker",
}


def test_help_lists_every_command_before_anything_is_configured(tmp_path):
    """`groupbuy --help` works with no secret and no database, and lists every command group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPBUY_")}
    env["GROUPBUY_ENV"] = "production"  # a missing secret would be an error if the app were built
    script = Path(sys.executable).with_name("groupbuy")
    out = subprocess.run(
        [str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == COMMANDS
