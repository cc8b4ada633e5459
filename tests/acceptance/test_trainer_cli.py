"""The trainer's data commands as a user runs them: `linefleet labels …`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from linefleet.cli import main
from tests.support.postgres import Postgres, postgres
from tests.support.trainer_data import (
    frame_payload,
    jpeg,
    override_event,
    png,
    write_taxonomies,
)

pytestmark = pytest.mark.acceptance
__all__ = ["postgres"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    write_taxonomies(tmp_path / "fleet-repo")
    return tmp_path / "fleet-repo"


def lf(repo: Path, *args: str, labels: str | None = None) -> int:
    state = repo.parent / "state"
    store = [] if labels is None else ["--labels", labels]
    return main(["labels", *args, "--state", str(state), "--fleet-repo", str(repo), *store])


@pytest.fixture(params=["sqlite", "postgresql"])
def labels(request: pytest.FixtureRequest) -> str | None:
    """The label store: the default SQLite file, or a database on a private PostgreSQL."""
    if request.param == "sqlite":
        return None
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database()


def _write_annotations(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(exist_ok=True)
    lines = []
    for i, row in enumerate(rows):
        (folder / f"{i}.png").write_bytes(png(i))
        base = {"image": f"{i}.png", "site": "toledo", "line": "line-1", "camera": "cam-1"}
        lines.append(json.dumps({**base, "annotator": "ana", **row}))
    path = folder / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_migrate_review_dataset(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], labels: str | None
) -> None:
    v1 = "surface-defects@1"
    path = _write_annotations(
        tmp_path / "in",
        [
            {"class": "ok", "taxonomy": v1},
            {"class": "spot", "taxonomy": v1},
            {"class": "contamination", "taxonomy": v1},
        ],
    )
    assert lf(repo, "import", str(path), labels=labels) == 0
    assert "imported 3 annotation(s), 3 new frame(s)" in capsys.readouterr().out
    assert lf(repo, "migrate", labels=labels) == 0
    out = capsys.readouterr().out
    # to the newest version: spot -> pit (renamed) -> deprecated; contamination waits at v2
    assert "1 deprecated, 1 renamed, 2 same, 1 split; 2 label(s) need review" in out

    assert lf(repo, "tasks", "--kind", "review", "--format", "json", labels=labels) == 0
    split, deprecated = json.loads(capsys.readouterr().out)["tasks"]
    assert deprecated["choices"] == ["ok", "scratch", "particle", "dent"]
    task = split
    assert task["choices"] == ["dust", "oil"]
    assert (
        lf(
            repo,
            "review",
            str(task["id"]),
            "--class",
            "scratch",
            "--reviewer",
            "lead",
            labels=labels,
        )
        == 1
    )
    assert "not a choice" in capsys.readouterr().err
    assert (
        lf(repo, "review", str(task["id"]), "--class", "oil", "--reviewer", "lead", labels=labels)
        == 0
    )
    assert lf(repo, "migrate", labels=labels) == 0
    capsys.readouterr()
    assert (
        lf(repo, "dataset", "--taxonomy", "surface-defects@3", "--format", "json", labels=labels)
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == 2  # ok and oil->particle; pit was deprecated and waits for review
    assert doc["excluded"] == {"awaiting review": 1}
    manifest = json.loads(Path(doc["manifest"]).read_text())
    assert sorted(i["class"] for i in manifest["items"]) == ["ok", "particle"]


def test_a_bad_import_is_refused_with_locations_and_writes_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_annotations(
        tmp_path / "in",
        [
            {"class": "ok", "taxonomy": "surface-defects@1"},
            {"class": "rust", "taxonomy": "surface-defects@1"},
            {"class": "ok", "taxonomy": "surface-defects@7"},
        ],
    )
    (tmp_path / "in" / "0.png").write_bytes(b"truncated")
    assert lf(repo, "import", str(path)) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: image:" in err and "not a PNG, JPEG, BMP, TIFF or WebP image" in err
    assert f"{path}:2:1: class: unknown class 'rust'" in err
    assert f"{path}:3:1: class: taxonomy version 'surface-defects@7' does not exist" in err
    assert "Traceback" not in err
    assert not (tmp_path / "state" / "frames").exists()
    assert lf(repo, "tasks") == 0
    assert "0 open task(s)" in capsys.readouterr().out


def test_overrides_from_the_edge_reach_the_dataset_after_qa(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    frames = tmp_path / "frames-in"
    frames.mkdir()
    shas = []
    for i in range(2):
        data = jpeg(i)
        shas.append(hashlib.sha256(data).hexdigest())
        (frames / f"{i}.lff").write_bytes(frame_payload(data, f"f-{i}"))
    events = tmp_path / "events.jsonl"
    lines = [override_event(1, shas[0], "scratch"), override_event(2, shas[1], "oil")]
    lines.append(override_event(2, shas[1], "oil"))  # redelivered
    lines.append(override_event(3, "0" * 64, "oil"))  # its frame has not arrived
    events.write_bytes(b"\n".join(lines) + b"\n")
    args = ["ingest-events", str(events), "--frames", str(frames)]
    assert lf(repo, *args) == 0
    out = capsys.readouterr().out
    assert "queued 2 override(s)" in out and "1 waiting for their frame" in out
    assert lf(repo, *args) == 0
    assert "queued 0 override(s)" in capsys.readouterr().out

    assert lf(repo, "tasks", "--kind", "override", "--format", "json") == 0
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    assert [t["line"] for t in tasks] == ["toledo/line-1"] * 2
    assert lf(repo, "qa", str(tasks[0]["id"]), "--confirm", "--reviewer", "lead") == 0
    assert lf(repo, "qa", str(tasks[1]["id"]), "--reject", "--reviewer", "lead") == 0
    assert lf(repo, "qa", str(tasks[1]["id"]), "--confirm", "--reviewer", "lead") == 1
    assert "already rejected" in capsys.readouterr().err
    assert lf(repo, "dataset", "--taxonomy", "surface-defects@2", "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    manifest = json.loads(Path(doc["manifest"]).read_text())
    assert [(i["frame"], i["class"]) for i in manifest["items"]] == [(shas[0], "scratch")]


def test_an_events_file_line_not_utf8_is_named_and_u2028_in_a_note_splits_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One Latin-1 line refused the whole events file (exit 2, a byte offset); a U+2028 in
    an inspector's note (valid JSON) split that event in two."""
    import hashlib

    frames = tmp_path / "frames-in"
    frames.mkdir()
    data = jpeg(0)
    (frames / "0.lff").write_bytes(frame_payload(data, "f-0"))
    event = json.loads(override_event(1, hashlib.sha256(data).hexdigest(), "scratch"))
    event["details"]["note"] = "left\u2028edge"
    events = tmp_path / "events.jsonl"
    latin1 = json.dumps({"note": "d\u00e9nt"}, ensure_ascii=False).encode("latin-1")
    events.write_bytes(json.dumps(event, ensure_ascii=False).encode() + b"\n" + latin1 + b"\n")
    assert lf(repo, "ingest-events", str(events), "--frames", str(frames)) == 1
    out, err = capsys.readouterr()
    assert f"skipped: {events}:2: not valid UTF-8 (byte 0xe9 at column 12)" in err
    assert f"{events}:1" not in err and "queued 1 override(s)" in out


def test_qa_of_several_overrides_in_one_call_is_all_or_none(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    frames = tmp_path / "frames-in"
    frames.mkdir()
    lines = []
    for i in range(3):
        data = jpeg(i)
        (frames / f"{i}.lff").write_bytes(frame_payload(data, f"f-{i}"))
        lines.append(override_event(i + 1, hashlib.sha256(data).hexdigest(), "scratch"))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    assert lf(repo, "ingest-events", str(events), "--frames", str(frames)) == 0
    assert "queued 3 override(s)" in capsys.readouterr().out
    assert lf(repo, "tasks", "--kind", "override", "--format", "json") == 0
    a, b, c = (str(t["id"]) for t in json.loads(capsys.readouterr().out)["tasks"])

    assert lf(repo, "qa", a, b, "--confirm", "--reviewer", "lead") == 0
    out = capsys.readouterr().out
    assert f"event {a}: confirmed by lead" in out and f"event {b}: confirmed by lead" in out
    assert lf(repo, "qa", c, a, "--reject", "--reviewer", "lead") == 1  # a: decided already
    assert "already confirmed" in capsys.readouterr().err
    assert lf(repo, "qa", c, c, "--reject", "--reviewer", "lead") == 2
    assert f"ID {c}: given more than once" in capsys.readouterr().err
    assert lf(repo, "tasks", "--kind", "override", "--format", "json") == 0
    left = json.loads(capsys.readouterr().out)["tasks"]
    assert [str(t["id"]) for t in left] == [c]  # nothing of the refused calls was written


def test_an_unreachable_postgresql_url_is_a_clear_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.mosquitto import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/labels"
    assert lf(repo, "tasks", labels=url) == 2
    err = capsys.readouterr().err
    assert f"label store {url}: cannot open" in err and "Traceback" not in err


def test_quality_report_and_unknown_fleet_repo(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lf(repo, "quality") == 2  # a mistyped --state is not an empty store made for it
    assert "no label store at " in capsys.readouterr().err
    assert lf(repo, "migrate") == 0  # creates the (empty) store
    assert lf(repo, "quality") == 0
    assert "double-labelled frames: 0" in capsys.readouterr().out
    assert lf(tmp_path / "nowhere", "quality") == 2
    assert "no taxonomies/ folder" in capsys.readouterr().err


def test_queue_ranks_unlabelled_edge_frames_by_uncertainty(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from factory_sim.onnx_fixtures import build_classifier

    frames = tmp_path / "frames-in"
    frames.mkdir()
    for i in range(4):
        (frames / f"{i}.lff").write_bytes(frame_payload(jpeg(10 + i, 48), f"q-{i}"))
    events = tmp_path / "none.jsonl"
    events.write_text("")
    assert lf(repo, "ingest-events", str(events), "--frames", str(frames)) == 0
    model = tmp_path / "m.onnx"
    model.write_bytes(build_classifier(3, seed=1).data)
    capsys.readouterr()
    assert lf(repo, "queue", "--model", str(model), "--format", "json", "--limit", "3") == 0
    doc = json.loads(capsys.readouterr().out)
    scores = [q["uncertainty"] for q in doc["queue"]]
    assert doc["unlabelled"] == 4 and len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert lf(repo, "queue", "--model", str(tmp_path / "missing.onnx")) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err


def test_train_with_boosted_trees_texture_and_an_operating_point(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow.tracking import MlflowClient

    from factory_sim.dataset import generate

    classes = ["ok", "scratch", "contamination", "spot"]
    generate(tmp_path / "sim", taxonomy=classes, lines=(1, 2), frames_per_line=60, seed=3,
             defect_rate=0.6, size=64)  # fmt: skip
    manifest = str(tmp_path / "sim" / "manifest.jsonl")
    assert (
        lf(repo, "import", manifest, "--annotator", "sim", "--taxonomy", "surface-defects@1") == 0
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["train", "--model", "surface-gb", "--taxonomy", "surface-defects@1", "--size", "64",
              "--state", str(tmp_path / "state"), "--fleet-repo", str(repo),
              "--tracking-uri", uri, "--no-register"]  # fmt: skip
    capsys.readouterr()
    # the features backend's defaults: boosted trees on the features + texture statistics,
    # max escape 0.05 (the CLI's default backend, blend, is trained in test_cnn_backend.py)
    assert main([*common, "--backend", "features", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    fitted = doc["fitted"]
    assert 0.0 < fitted["ok_scale"] <= 1.0 and fitted["validation_escape"] <= 0.05
    params = MlflowClient(uri).get_run(doc["run_id"]).data.params
    assert params["classifier"] == "GradientBoosting" and params["texture"] == "True"
    assert params["max_escape"] == "0.05" and params["ok_scale"] == str(fitted["ok_scale"])
    assert float(params["ok_bias"]) == pytest.approx(math.log(fitted["ok_scale"]), abs=1e-3)
    assert fitted["validation_folds"] == 5
    assert fitted["validation_escape_worst_line_estimate"] <= 0.05
    assert fitted["validation_escape_worst_line"] <= 0.1  # a line's own frames weigh half
    # logistic regression at plain argmax records no operating point
    args = [*common, "--backend", "features", "--classifier", "logistic", "--no-texture"]
    args += ["--max-escape", "argmax"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    params = MlflowClient(uri).get_run(doc["run_id"]).data.params
    assert params["classifier"] == "StandardScaler+LogisticRegression" and "ok_scale" not in params
    assert params["texture"] == "False" and params["max_escape"] == "argmax"
    # the features-only options are refused for the CNN, before any training
    assert main([*common, "--backend", "cnn", "--texture"]) == 2
    err = capsys.readouterr().err
    assert "--classifier and --texture apply to the features and blend backends, not cnn" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as bad:
        main([*common, "--classifier", "forest"])
    assert bad.value.code == 2 and "invalid choice: 'forest'" in capsys.readouterr().err
