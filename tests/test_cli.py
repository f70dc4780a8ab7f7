import json
import os
import subprocess
import sys

import longtail as lt
from longtail.cli import main


def test_losses_table_lists_every_registered_loss(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    # each row's first cell, in order (a substring test passes `mm` inside `mm-ldam`)
    assert [line.split()[0] for line in out.splitlines()[1:]] == lt.list_losses()


def test_losses_json_and_filter(capsys):
    assert main(["losses", "mm*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mm", "mm-ldam"]
    assert rows[1]["needs_counts"] is True
    assert rows[0]["per_sample"] is True
    assert main(["losses", "dice", "--json"]) == 0  # a batch-level loss says so
    assert json.loads(capsys.readouterr().out)[0]["per_sample"] is False


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "losses" in capsys.readouterr().out


def test_closed_pipe_ends_quietly():
    """`longtail losses | head -0`: the reader is gone before we write; no traceback."""
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "longtail", "losses"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # before the interpreter has even imported longtail
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err
