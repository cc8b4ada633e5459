"""Open the promotion pull request (the executor of a `PromotionPlan`).

    pr = propose(Proposal(repo=Path("fleet"), artifact=onnx_bytes, ...), forge)

1. fetch the remote; the base is `<remote>/<base>` as it is now;
2. score the candidate and every eligible line's incumbent on that line's holdout (the
   incumbent's ONNX artifact read from git at the base commit; its sha256 checked);
3. plan (pure, `trainer.promote`); no line qualifies -> an error, nothing written;
4. with `push_to` (`oci://HOST/REPO`), push the ONNX to the registry (tagged `vN`) and
   catalogue it as `oci://HOST/REPO@sha256:…`: git then holds YAML only;
5. in a temporary worktree on a branch recreated from the base (so a base that moved is not
   a problem): without a registry copy the artifact to `fleet/artifacts/`; append the
   catalogue version with the per-line evidence, put the candidate in shadow on the proposed
   lines (ruamel round-trip);
6. load + validate that tree: any error -> FindingsError, nothing committed;
7. commit, push the branch (a rejected push is an error), open or update the PR.

The user's own checkout is never touched (the work happens in a separate worktree).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core import gitrepo
from linefleet_core.catalogue import ModelVersion
from linefleet_core.errors import Finding, FindingsError, PermanentError, Severity, UsageError
from linefleet_core.forge import Forge, PullRequest
from linefleet_core.oci import Credentials, fetch_blob, is_oci, parse_ref, push_bytes
from linefleet_core.spec import DirectorySource, FleetSpec, load
from linefleet_core.taxonomy import Taxonomy
from linefleet_core.validation import check
from trainer.catalogue_edit import add_model_version, set_shadow_candidate
from trainer.datasets import HOLDOUT_PERCENT, DatasetVersion
from trainer.evaluate import ModelUnderTest, carry_forward, evaluate
from trainer.evidence import factory_rates
from trainer.frames import FrameStore
from trainer.promote import (
    CandidateInfo,
    LineScores,
    PromotionPlan,
    eligible_lines,
    plan_promotion,
    render_body,
)

AUTHOR = ("linefleet-trainer", "trainer@linefleet.invalid")
OPSET = 17


@dataclass(frozen=True)
class Proposal:
    repo: Path
    model: str
    artifact: bytes
    input_size: int
    dataset: DatasetVersion
    run_id: str
    reference_stats: Mapping[str, float]
    remote: str = "origin"
    base: str = "main"
    push_to: str | None = None
    """`oci://HOST/REPO`: push the ONNX to the registry and catalogue it by digest, instead of
    committing it into the fleet repository."""
    push_credentials: Credentials | None = None
    trained_on: tuple[str, ...] = ()
    """The `site/line` keys whose frames trained the candidate (from the MLflow run)."""


@dataclass(frozen=True)
class ProposalResult:
    plan: PromotionPlan
    pull: PullRequest | None
    commit: str | None


def _artifact_bytes(repo: Any, commit: Any, url: str) -> bytes:
    """An artifact named in the catalogue: repository-relative (read from git) or a file path."""
    path = url.removeprefix("file://")
    if is_oci(url):
        return fetch_blob(parse_ref(url))
    if url.startswith(("http://", "https://")):
        import urllib.request

        with urllib.request.urlopen(url, timeout=30) as resp:
            data: bytes = resp.read()
            return data
    if Path(path).is_absolute():
        return Path(path).read_bytes()
    try:
        blob = commit.tree / path
    except KeyError:
        raise PermanentError(f"{path} is not in the fleet repo at {commit.hexsha[:12]}") from None
    raw: bytes = blob.data_stream.read()
    return raw


def score_lines(
    spec: FleetSpec,
    candidate: ModelUnderTest,
    proposal: Proposal,
    frames: FrameStore,
    taxonomies: Mapping[str, Taxonomy],
    repo: Any,
    commit: Any,
) -> dict[str, LineScores]:
    """Candidate, incumbent and any shadow rival on each eligible line's holdout."""
    metric = spec.policy.promotion.metric
    ds = proposal.dataset
    out: dict[str, LineScores] = {}
    for line in eligible_lines(spec, ds.taxonomy):
        holdout = ds.holdout(line.key)
        if not holdout:
            continue
        cand, _ = evaluate(candidate, holdout, frames, ds.classes, ds.taxonomy, taxonomies)
        serving = line.rollout.serving
        mv = spec.model_version(serving)
        incumbent: float | None = None
        flag: str | None = None
        if mv is not None:
            incumbent = _score_incumbent(mv, holdout, frames, ds, taxonomies, repo, commit, metric)
            flag = _incumbent_flag(mv, serving, incumbent, holdout, ds, taxonomies)
        rival, rival_score = _rival(
            spec, line.rollout.candidate, holdout, frames, ds, taxonomies, (repo, commit)
        )
        out[line.key] = LineScores(
            round(cand.metric(metric), 4),
            None if incumbent is None else round(incumbent, 4),
            serving,
            len(holdout),
            rates=factory_rates(cand.confusion, ds.classes),
            incumbent_flag=flag,
            rival=rival,
            rival_score=rival_score,
        )
    return out


def _incumbent_flag(
    mv: ModelVersion,
    ref: str,
    score: float,
    holdout: Any,
    ds: DatasetVersion,
    taxonomies: Mapping[str, Taxonomy],
) -> str | None:
    """Why the incumbent cannot have been scored properly on this holdout, or None."""
    if score <= 0.0:
        return f"{ref} scored {score:.3f} on this line's holdout"
    knows = {carry_forward(c, mv.taxonomy, ds.taxonomy, taxonomies) for c in mv.output_classes}
    seen = {i.cls for i in holdout}
    missing = sorted(c for c in knows - seen if c is not None)
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        return f"the holdout has no frames of {names}, which {ref} must know"
    return None


def _rival(
    spec: FleetSpec,
    cand: Any,
    holdout: Any,
    frames: FrameStore,
    ds: DatasetVersion,
    taxonomies: Mapping[str, Taxonomy],
    source: tuple[Any, Any],
) -> tuple[str | None, float | None]:
    """The candidate already in shadow on the line, scored on the same holdout."""
    if cand is None or cand.stage != "shadow":
        return None, None
    mv = spec.model_version(cand.model)
    if mv is None:
        return None, None
    repo, commit = source
    score = _score_incumbent(
        mv, holdout, frames, ds, taxonomies, repo, commit, spec.policy.promotion.metric
    )
    return cand.model, round(score, 4)


def _score_incumbent(
    mv: ModelVersion,
    holdout: Any,
    frames: FrameStore,
    ds: DatasetVersion,
    taxonomies: Mapping[str, Taxonomy],
    repo: Any,
    commit: Any,
    metric: str,
) -> float:
    data = _artifact_bytes(repo, commit, mv.artifact.url)
    if hashlib.sha256(data).hexdigest() != mv.artifact.sha256:
        raise PermanentError(
            f"incumbent artifact {mv.artifact.url}: sha256 does not match the catalogue"
        )
    model = ModelUnderTest(
        data,
        mv.input.shape[2],
        mv.input.shape[3],
        mv.input.color,
        tuple(mv.output_classes),
        mv.taxonomy,
    )
    scores, _ = evaluate(model, holdout, frames, ds.classes, ds.taxonomy, taxonomies)
    return scores.metric(metric)


def propose(
    proposal: Proposal, forge: Forge, frames: FrameStore, taxonomies: Mapping[str, Taxonomy]
) -> ProposalResult:
    repo = gitrepo.open_repo(proposal.repo)
    try:
        repo.remote(proposal.remote).fetch()
    except Exception as exc:
        raise UsageError(f"git fetch {proposal.remote} failed: {exc}") from None
    commit = gitrepo.resolve(repo, f"{proposal.remote}/{proposal.base}")
    spec, _ = load(gitrepo.GitSource(commit))
    family = spec.models.get(proposal.model)
    if family is None:
        raise UsageError(f"model family {proposal.model!r} is not in the catalogue at the base")
    version = max(v.version for v in family.versions) + 1
    ds = proposal.dataset
    info = CandidateInfo(
        proposal.model,
        version,
        ds.taxonomy,
        ds.hash,
        proposal.run_id,
        hashlib.sha256(proposal.artifact).hexdigest(),
        len(proposal.artifact),
        tuple(proposal.trained_on),
    )
    size = proposal.input_size
    candidate = ModelUnderTest(proposal.artifact, size, size, "rgb", ds.classes, ds.taxonomy)
    scores = score_lines(spec, candidate, proposal, frames, taxonomies, repo, commit)
    plan = plan_promotion(spec, info, scores, HOLDOUT_PERCENT / 100)
    if not plan.included:
        reasons = "; ".join(f"{d.line}: {d.reason}" for d in plan.left_out) or "no eligible line"
        raise PermanentError(f"no line qualifies for {info.ref}, no pull request: {reasons}")
    url = artifact_path(plan.candidate)
    if proposal.push_to is not None:  # into the registry before anything names it
        pushed = push_bytes(
            proposal.artifact,
            f"{info.model}-v{info.version}.onnx",
            proposal.push_to,
            tag=f"v{info.version}",
            credentials=proposal.push_credentials,
        )
        url = str(pushed.ref)
    sha = _commit_branch(repo, commit, spec, plan, proposal, url)
    gitrepo.push(repo, proposal.remote, f"refs/heads/{plan.branch}", force=True)
    pull = forge.open_pull_request(
        plan.branch, proposal.base, plan.title, render_body(plan), labels=["promotion"]
    )
    return ProposalResult(plan, pull, sha)


def catalogue_entry(plan: PromotionPlan, proposal: Proposal, url: str) -> dict[str, Any]:
    c, ds = plan.candidate, proposal.dataset
    evaluation = {
        d.line: d.evidence.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        for d in plan.included
        if d.evidence is not None
    }
    return {
        "version": c.version,
        "taxonomy": ds.taxonomy,
        "output_classes": list(ds.classes),
        "artifact": {"url": url, "sha256": c.sha256, "size": c.size},
        "input": {"shape": [1, 3, proposal.input_size, proposal.input_size], "color": "rgb"},
        "opset": OPSET,
        "execution_providers": ["CPUExecutionProvider"],
        "reference_stats": dict(proposal.reference_stats),
        "mlflow_run_id": c.run_id,
        "dataset": ds.hash,
        "trained_on": list(c.trained_on),
        "evaluation": evaluation,
    }


def artifact_path(c: CandidateInfo) -> str:
    return f"fleet/artifacts/{c.model}-v{c.version}.onnx"


def _commit_branch(
    repo: Any, base: Any, spec: FleetSpec, plan: PromotionPlan, proposal: Proposal, url: str
) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="linefleet-promote-"))
    tree = tmp / "tree"
    repo.git.worktree("add", "--force", "-B", plan.branch, str(tree), base.hexsha)
    ok = False
    try:
        family = spec.models[proposal.model]
        if url == artifact_path(plan.candidate):  # no registry: the file goes into git
            target = tree / url
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(proposal.artifact)
        add_model_version(tree / spec.located(family).path, catalogue_entry(plan, proposal, url))
        for d in plan.included:
            set_shadow_candidate(tree / spec.located(spec.lines[d.line]).path, plan.candidate.ref)
        _validate(tree)
        import git

        work = git.Repo(tree)
        work.git.add("-A")
        actor = git.Actor(*AUTHOR)
        message = f"{plan.title}\n\n{render_body(plan)}"
        done = work.index.commit(message, author=actor, committer=actor)
        ok = True
        return str(done.hexsha)
    finally:
        repo.git.worktree("remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            repo.git.branch("-D", plan.branch)  # nothing half-made is left behind


def _validate(tree: Path) -> None:
    spec, findings = load(DirectorySource(tree))
    findings = findings + check(spec)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(
            [
                Finding(f.path, f.line, f.col, f.field, f"(proposed change) {f.message}")
                for f in errors
            ]
        )
