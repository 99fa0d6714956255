"""The heartbeat knobs (``NLFS_HEARTBEAT_S``, ``NLFS_GRACE_S``) are checked like any input: a bad
value is one line and exit code 2, before any storage is opened."""

from __future__ import annotations

import pytest
from fault_tools import finish, start_cli

WHOLE = "must be a whole number of seconds, at least 1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NLFS_GRACE_S": "soon"}, f"NLFS_GRACE_S='soon' {WHOLE}"),
        ({"NLFS_HEARTBEAT_S": "0"}, f"NLFS_HEARTBEAT_S='0' {WHOLE}"),
        (
            {"NLFS_HEARTBEAT_S": "10", "NLFS_GRACE_S": "10"},
            "NLFS_GRACE_S (10) must exceed NLFS_HEARTBEAT_S (10)",
        ),
    ],
)
def test_a_bad_heartbeat_setting_is_one_line_and_exit_2(tmp_path, env, message):
    log = tmp_path / "out.log"
    journal = str(tmp_path / "none.journal")
    assert finish(start_cli(["worker", "--study", "x", "--storage", journal], log, env), log) == 2
    assert log.read_text() == f"Error: {message}\n"
    assert not (tmp_path / "none.journal").exists()
