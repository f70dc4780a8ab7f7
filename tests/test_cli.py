import json

import longtail as lt
from longtail.cli import main


def test_losses_table_lists_every_registered_loss(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    for name in lt.list_losses():
        assert name in out


def test_losses_json_and_filter(capsys):
    assert main(["losses", "mm*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mm", "mm-ldam"]
    assert rows[1]["needs_counts"] is True


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "losses" in capsys.readouterr().out
