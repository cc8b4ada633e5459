"""The promotion pull request on real git (bare origin + clone) and the local forge."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import git
import pytest

from factory_sim.onnx_fixtures import OPSET, build_classifier
from linefleet.cli import main
from linefleet_core.errors import PermanentError
from linefleet_core.spec import DirectorySource, load
from linefleet_core.validation import check
from linefleet_forge import forge_from_spec, gitrepo
from reconciler.review.check import validate
from tests.support.minifleet import V1, V2, edit_yaml, model_file, write_minifleet
from trainer.proposal import PromotionRequest, propose
from trainer.run import TrainRequest, TrainResult, train_run
from trainer.workspace import Workspace

from .conftest import labelled_workspace

pytestmark = pytest.mark.integration


def _real_incumbents(root: Path) -> None:
    """Replace the mini fleet's placeholder artifacts with real (untrained) ONNX models."""

    def mutate(doc: Any) -> None:
        for mv in doc["versions"]:
            classes = V1 if mv["taxonomy"] == "surface-defects@1" else V2
            built = build_classifier(len(classes), seed=mv["version"])
            rel = f"fleet/artifacts/surface-classifier-v{mv['version']}.onnx"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(built.data)
            mv["artifact"]["url"] = rel
            mv["artifact"]["sha256"] = built.sha256
            mv["artifact"]["size"] = built.size
            mv["opset"] = OPSET  # what the graph imports (validate reads it)

    edit_yaml(model_file(root), mutate)
    edit_yaml(
        root / "fleet/policy.yaml", lambda d: d["promotion"].__setitem__("min_holdout_frames", 5)
    )
    text = model_file(root).read_text()
    model_file(root).write_text("# the surface model family: reviewed by quality\n" + text)
    line = root / "fleet/sites/toledo/lines/line-2.yaml"
    line.write_text(
        line.read_text().replace("product: door-panel", "product: 'door-panel'  # p/n 4711")
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Workspace, TrainResult]:
    root = tmp_path_factory.mktemp("promote")
    origin = root / "origin.git"
    git.Repo.init(origin, bare=True, initial_branch="main")
    author = root / "author"
    write_minifleet(author)
    _real_incumbents(author)
    repo = git.Repo.init(author, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t").set_value("user", "email", "t@example.invalid")
    repo.git.add("-A")
    repo.index.commit("fleet")
    repo.create_remote("origin", str(origin)).push("main")
    clone = root / "clone"
    git.Repo.clone_from(str(origin), clone)
    ws = labelled_workspace(
        root, 40, repo=clone, classes=V2, taxonomy="surface-defects@2", lines=(2, 2)
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = train_run(TrainRequest(ws, "surface-classifier", uri))
    return origin, clone, ws, result


def _proposal(clone: Path, result: TrainResult) -> PromotionRequest:
    return PromotionRequest(
        repo=clone,
        model="surface-classifier",
        artifact=result.artifact.read_bytes(),
        input_size=64,
        dataset=result.dataset,
        run_id=result.run_id,
        reference_stats=result.reference_stats,
        trained_on=result.trained_on,
    )


def test_promotion_pr_edits_catalogue_and_lines_and_passes_validation(
    setup: tuple[Path, Path, Workspace, TrainResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    origin, clone, ws, result = setup
    forge = forge_from_spec("local", clone)
    out = propose(_proposal(clone, result), forge, ws.frames, ws.taxonomies())
    plan = out.plan
    assert plan.candidate.ref == "surface-classifier@4"
    included = {d.line for d in plan.included}
    left = {d.line: d.reason for d in plan.left_out}
    assert "dresden/line-1" in left and "canary" in left["dresden/line-1"]
    assert included  # untrained incumbents are easy to beat
    assert out.pull is not None and out.pull.head == "promote/surface-classifier-4"
    assert "| `dresden/line-1` |" in out.pull.body and "left out" in out.pull.body
    assert result.run_id in out.pull.body and result.dataset.hash in out.pull.body

    check_out = tmp_path / "check"
    branch_repo = git.Repo.clone_from(str(origin), check_out, branch="promote/surface-classifier-4")
    spec, findings = load(DirectorySource(check_out))
    errors = [f for f in findings + check(spec) if f.severity.value == "error"]
    assert errors == []
    mv = spec.model_version("surface-classifier@4")
    assert mv is not None and mv.mlflow_run_id == result.run_id
    assert set(mv.evaluation) == included
    assert tuple(mv.trained_on) == result.trained_on and len(mv.trained_on) == 4
    for key in included:
        ev = mv.evaluation[key]
        assert ev.escape_rate is not None and ev.false_reject_rate is not None
        assert ev.escape_rate.low <= ev.escape_rate.value <= ev.escape_rate.high
        assert ev.confusion is not None and sum(map(sum, ev.confusion)) == ev.holdout_frames
    assert "- trained on: `dresden/line-1`, `dresden/line-2`, `toledo/line-1`" in out.pull.body
    assert "escape rate | false-reject rate | decision |" in out.pull.body
    assert "Recall per class on each line's holdout (95% interval):" in out.pull.body
    data = (check_out / mv.artifact.url).read_bytes()
    assert hashlib.sha256(data).hexdigest() == mv.artifact.sha256
    for key in included:
        cand = spec.lines[key].rollout.candidate
        assert cand is not None and (cand.model, cand.stage) == ("surface-classifier@4", "shadow")
    assert spec.lines["dresden/line-1"].rollout.candidate.model == "surface-classifier@3"  # type: ignore[union-attr]
    text = (check_out / "fleet/models/surface-classifier.yaml").read_text()
    assert text.startswith("# the surface model family: reviewed by quality\n")
    line2 = (check_out / "fleet/sites/toledo/lines/line-2.yaml").read_text()
    assert "product: 'door-panel'  # p/n 4711" in line2
    report = validate(check_out, "origin/main", None)
    assert report.ok, [f.render() for f in report.findings]
    plan_args = ["plan", "--repo", str(check_out), "--base", "origin/main", "--format", "text"]
    assert main([*plan_args, "--now", "2026-11-25T12:00:00+00:00"]) == 0
    plan_text = capsys.readouterr().out
    for key in included:
        assert key in plan_text
    assert "surface-classifier@4" in plan_text
    assert branch_repo.head.commit.parents[0].hexsha == git.Repo(origin).commit("main").hexsha
    assert git.Repo(clone).is_dirty(untracked_files=True) is False  # user's checkout untouched


def test_base_moved_the_branch_is_recreated_from_the_new_base(
    setup: tuple[Path, Path, Workspace, TrainResult], tmp_path: Path
) -> None:
    origin, clone, ws, result = setup
    other = git.Repo.clone_from(str(origin), tmp_path / "other")
    with other.config_writer() as cfg:
        cfg.set_value("user", "name", "o").set_value("user", "email", "o@example.invalid")
    readme = tmp_path / "other" / "README.md"
    readme.write_text("moved\n")
    other.git.add("README.md")
    other.index.commit("base moves")
    other.remote("origin").push("main")
    forge = forge_from_spec("local", clone)
    out = propose(_proposal(clone, result), forge, ws.frames, ws.taxonomies())
    head = git.Repo(origin).commit("promote/surface-classifier-4")
    assert head.parents[0].hexsha == git.Repo(origin).commit("main").hexsha
    assert out.pull is not None and len(forge.list()) == 1  # type: ignore[attr-defined]


def test_trainer_promote_cli_updates_the_same_pull_request(
    setup: tuple[Path, Path, Workspace, TrainResult], capsys: pytest.CaptureFixture[str]
) -> None:
    origin, clone, ws, result = setup
    uri = f"sqlite:///{origin.parent / 'mlflow.db'}"
    args = ["trainer", "promote", "--run", result.run_id, "--tracking-uri", uri]
    args += ["--state", str(ws.state), "--fleet-repo", str(clone), "--forge", "local"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "left out  dresden/line-1" in out and "pull request #1:" in out
    from trainer.tracking import Tracker

    tags = Tracker.open(uri).client.get_run(result.run_id).data.tags
    assert (tags["linefleet.proposed"], tags["linefleet.pull_request"]) == (
        "surface-classifier@4",
        "1",
    )
    assert main([*args[:3], "nope", *args[4:]]) == 1
    assert "not found" in capsys.readouterr().err


def test_promotion_with_a_registry_pushes_the_onnx_and_commits_yaml_only(
    setup: tuple[Path, Path, Workspace, TrainResult], tmp_path: Path
) -> None:
    from dataclasses import replace

    from linefleet_core.oci import fetch_blob, parse_ref
    from tests.support.registry import Registry

    origin, clone, ws, result = setup
    with Registry(tmp_path / "registry") as registry:
        proposal = replace(
            _proposal(clone, result), push_to=f"oci://{registry.address}/models/surface-classifier"
        )
        propose(proposal, forge_from_spec("local", clone), ws.frames, ws.taxonomies())
        branch = git.Repo(origin).commit("promote/surface-classifier-4")
        paths = {str(d.a_path or d.b_path) for d in branch.diff(branch.parents[0])}
        assert paths and all(p.endswith(".yaml") for p in paths), paths
        spec, _ = load(gitrepo.GitSource(branch))
        mv = spec.model_version("surface-classifier@4")
        assert mv is not None
        ref = parse_ref(mv.artifact.url)
        assert (ref.host, ref.repo, ref.sha256) == (
            registry.address,
            "models/surface-classifier",
            mv.artifact.sha256,
        )
        assert fetch_blob(ref) == result.artifact.read_bytes()
        tags = [r for r in registry.requests() if r["http.request.uri"].endswith("/manifests/v4")]
        assert tags, "the artifact is tagged with its catalogue version"


def test_a_forge_that_refuses_is_a_clear_error(
    setup: tuple[Path, Path, Workspace, TrainResult], tmp_path: Path
) -> None:
    from linefleet_forge import ForgeRefused

    _, clone, ws, result = setup
    elsewhere = git.Repo.init(tmp_path / "elsewhere", initial_branch="main")
    (tmp_path / "elsewhere" / "README").write_text("x")
    elsewhere.git.add("README")
    elsewhere.index.commit("init")
    forge = forge_from_spec("local", tmp_path / "elsewhere")  # knows no promote/ branch
    with pytest.raises(ForgeRefused, match="promote/surface-classifier-4"):
        propose(_proposal(clone, result), forge, ws.frames, ws.taxonomies())


def test_no_qualifying_line_is_an_error_and_nothing_is_pushed(
    setup: tuple[Path, Path, Workspace, TrainResult],
) -> None:
    origin, clone, ws, result = setup

    def strict(doc: Any) -> None:
        doc["promotion"]["min_holdout_frames"] = 100000

    policy_repo = git.Repo(clone)
    policy_repo.remote("origin").pull("main")
    edit_yaml(clone / "fleet/policy.yaml", strict)
    policy_repo.git.add("-A")
    policy_repo.index.commit("strict policy")
    gitrepo.push(policy_repo, "origin", "main")
    before = {r.name for r in git.Repo(origin).references}
    with pytest.raises(PermanentError, match="no line qualifies"):
        propose(
            _proposal(clone, result), forge_from_spec("local", clone), ws.frames, ws.taxonomies()
        )
    assert {r.name for r in git.Repo(origin).references} == before
