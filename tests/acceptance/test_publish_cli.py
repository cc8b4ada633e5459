"""`linefleet keys generate` and `linefleet publish` run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support import minifleet
from tests.support.mosquitto import Mosquitto, free_port, mosquitto

__all__ = ["mosquitto"]
pytestmark = pytest.mark.acceptance


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    minifleet.write_minifleet(root)
    minifleet.init_repo(root)
    minifleet.commit_all(root, "initial fleet")
    return root


@pytest.fixture
def key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["keys", "generate", "--out", str(tmp_path / "keys"), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["public_key"]).name == f"{out['key_id']}.pub"
    return Path(out["private_key"])


def publish(repo: Path, broker: str, key: Path, *extra: str) -> int:
    return main(
        ["publish", "--broker", broker, "--repo", str(repo), "--signing-key", str(key), *extra]
    )


def test_publish_twice_json(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(repo, mosquitto.url, key_file, "--format", "json") == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["published"], first["unchanged"], first["pruned"], first["devices"]) == (
        3,
        0,
        0,
        3,
    )
    assert publish(repo, mosquitto.url, key_file, "--format", "json") == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["published"], second["unchanged"]) == (0, 3)


def test_publish_text_summary(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(repo, mosquitto.url, key_file) == 0
    out = capsys.readouterr().out
    assert "published toledo/toledo-edge-1 (generation 1)" in out
    assert out.strip().endswith("3 published, 0 unchanged, 0 pruned, 3 device(s)")


def test_dry_run_sends_nothing(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(repo, mosquitto.url, key_file, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would be published toledo/toledo-edge-1" in out
    assert out.strip().startswith("would be") and "dry run: commit" in out
    assert publish(repo, mosquitto.url, key_file, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["published"] == 3  # nothing was sent before


def test_unreachable_broker_exits_4(
    repo: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish(repo, f"mqtt://127.0.0.1:{free_port()}", key_file) == 4
    err = capsys.readouterr().err
    assert "unreachable" in err and "Traceback" not in err


def test_invalid_fleet_exits_1_and_names_the_file(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    minifleet.edit_rollout(repo, "dresden/line-2", serving="surface-classifier@42")
    minifleet.commit_all(repo, "broken")
    assert publish(repo, mosquitto.url, key_file) == 1
    assert "fleet/sites/dresden/lines/line-2.yaml" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "http://x"], "expected mqtt://"),
        (["--rev", "no-such-rev"], "unknown git revision"),
        (["--signing-key", "/nonexistent/key"], "--signing-key"),
    ],
)
def test_usage_errors_exit_2(
    repo: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    base = {"--broker": "mqtt://127.0.0.1:1", "--signing-key": str(key_file), "--rev": "HEAD"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["publish", "--repo", str(repo)] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_keys_generate_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path)]) == 0
    assert "key_id" in capsys.readouterr().out
    assert main(["keys", "generate", "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_keys_show_prints_the_key_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for path in (out["private_key"], out["public_key"]):
        assert main(["keys", "show", path]) == 0
        assert capsys.readouterr().out.startswith(out["key_id"])
    (tmp_path / "junk.pub").write_text("not a key")
    assert main(["keys", "show", str(tmp_path / "junk.pub")]) == 2
    assert "not a PEM public key" in capsys.readouterr().err


def test_a_promotion_merged_during_a_freeze_waits_and_a_rollback_passes(
    repo: Path, key_file: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12: a change checked before a freeze and merged during it was published."""
    in_freeze = minifleet.IN_FREEZE.isoformat()
    assert publish(repo, mosquitto.url, key_file, "--now", in_freeze) == 0
    capsys.readouterr()
    canary = {"model": "surface-classifier@3", "stage": "canary", "canary_fraction": 0.1}
    minifleet.edit_rollout(repo, "toledo/line-1", candidate=canary)
    minifleet.commit_all(repo, "promote toledo/line-1 to canary")

    assert publish(repo, mosquitto.url, key_file, "--now", in_freeze, "--format", "json") == 0
    held = json.loads(capsys.readouterr().out)
    assert held["published_devices"] == []  # toledo-edge-1 keeps what it runs
    [note] = held["held"]
    assert note.startswith(
        "toledo/toledo-edge-1: toledo/line-1 waits: promote surface-classifier@3"
    )
    assert "no changes during the freeze 'year-end inventory'" in note

    assert publish(repo, mosquitto.url, key_file, "--now", in_freeze) == 0
    assert "held      toledo/toledo-edge-1: toledo/line-1 waits" in capsys.readouterr().out

    minifleet.edit_rollout(repo, "toledo/line-2", candidate=None)
    minifleet.commit_all(repo, "abort the candidate of toledo/line-2")
    assert publish(repo, mosquitto.url, key_file, "--now", in_freeze, "--format", "json") == 0
    rolled = json.loads(capsys.readouterr().out)
    # The abort lands on both devices serving line-2; line-1's canary still waits.
    assert rolled["published_devices"] == ["toledo/toledo-edge-1", "toledo/toledo-edge-2"]
    assert [n.split(" waits:")[0] for n in rolled["held"]] == [
        "toledo/toledo-edge-1: toledo/line-1"
    ]

    after = minifleet.QUIET.replace(year=2027).isoformat()  # the freeze is over
    assert publish(repo, mosquitto.url, key_file, "--now", after, "--format", "json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["held"] == [] and done["published_devices"] == ["toledo/toledo-edge-1"]
    assert publish(repo, mosquitto.url, key_file, "--now", after, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["published"] == 0
