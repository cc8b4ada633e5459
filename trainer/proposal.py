"""Open the promotion pull request (the executor of a `PromotionPlan`).

    pr = propose(PromotionRequest(repo=Path("fleet"), artifact=onnx_bytes, ...), forge)

1. fetch the remote; the base is `<remote>/<base>` as it is now;
2. score the candidate and every eligible line's incumbent on that line's holdout (the
   incumbent's ONNX artifact read from git at the base commit; its sha256 checked);
3. plan (pure, `trainer.promote`); no line qualifies -> an error, nothing written;
4. with `push_to` (`oci://HOST/REPO`), push the ONNX to the registry (tagged `vN`) and
   catalogue it as `oci://HOST/REPO@sha256:…`: git then holds YAML only;
5. propose the change through the one "change as a pull request" flow the rollbacks use too
   (`linefleet_forge.proposal`: a temporary clone, a branch recreated from the base's tip, one
   commit, a forced push, the PR opened or updated). The edit: without a registry, copy the
   artifact to `fleet/artifacts/`; append the catalogue version with the per-line evidence, put
   the candidate in shadow on the proposed lines (`linefleet_core.yamledit`);
6. load + validate the edited tree before the commit: any error -> FindingsError, nothing
   committed or pushed.

The user's own checkout is never touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.catalogue import InputSpec, ModelVersion, Outputs
from linefleet_core.errors import Finding, FindingsError, PermanentError, Severity, UsageError
from linefleet_core.modelio import contract_of_version
from linefleet_core.oci import Credentials, fetch_blob, is_oci, parse_ref, push_bytes
from linefleet_core.spec import DirectorySource, FleetSpec, load
from linefleet_core.taxonomy import Taxonomy
from linefleet_core.validation import load_checked
from linefleet_forge import Forge, PullRequest, gitrepo
from linefleet_forge import proposal as forge_proposal
from trainer.catalogue_edit import (
    add_model_version,
    new_model_family,
    set_shadow_candidate,
    set_version_evaluation,
)
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
LABELS = ("promotion",)
OPSET = 17


@dataclass(frozen=True)
class PromotionRequest:
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
    version: int | None = None
    """The catalogue version to propose (a registered model version); None: the next one."""
    contract: Mapping[str, Any] | None = None
    """A model brought from outside (`linefleet model add`): its catalogue fields (task,
    output_classes, input, outputs, opset); None: a linefleet-trained classifier."""
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
    proposal: PromotionRequest,
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
        mv.input.height,
        mv.input.width,
        mv.input.color,
        tuple(mv.output_classes),
        mv.taxonomy,
        contract_of_version(mv) if _is_v2(mv) else None,
    )
    scores, _ = evaluate(model, holdout, frames, ds.classes, ds.taxonomy, taxonomies)
    return scores.metric(metric)


def propose(
    proposal: PromotionRequest, forge: Forge, frames: FrameStore, taxonomies: Mapping[str, Taxonomy]
) -> ProposalResult:
    repo = gitrepo.open_repo(proposal.repo)
    if proposal.remote not in [r.name for r in repo.remotes]:
        raise UsageError(
            f"{proposal.repo}: no git remote {proposal.remote!r} to push the proposal to (remotes: "
            f"{', '.join(r.name for r in repo.remotes) or 'none'}); add one (`git remote add "
            f"{proposal.remote} URL`, a bare repository on this machine will do) or give --remote"
        )
    try:
        repo.remote(proposal.remote).fetch()
    except Exception as exc:
        raise UsageError(f"git fetch {proposal.remote} failed: {exc}") from None
    commit = gitrepo.resolve(repo, f"{proposal.remote}/{proposal.base}")
    spec, _ = load(gitrepo.GitSource(commit))
    family = spec.models.get(proposal.model)
    if family is None and proposal.contract is None:
        raise UsageError(f"model family {proposal.model!r} is not in the catalogue at the base")
    known = [v.version for v in family.versions] if family else []
    version = proposal.version or max(known, default=0) + 1
    sha = hashlib.sha256(proposal.artifact).hexdigest()
    held = spec.model_version(f"{proposal.model}@{version}")
    if held is not None and held.artifact.sha256 != sha:
        raise PermanentError(
            f"{proposal.model}@{version} is in the catalogue with another artifact "
            f"({held.artifact.sha256[:12]}, not {sha[:12]})"
        )
    ds = proposal.dataset
    info = CandidateInfo(
        proposal.model,
        version,
        ds.taxonomy,
        ds.hash,
        proposal.run_id,
        sha,
        len(proposal.artifact),
        tuple(proposal.trained_on),
    )
    size = proposal.input_size
    candidate = ModelUnderTest(proposal.artifact, size, size, "rgb", ds.classes, ds.taxonomy)
    if proposal.contract is not None:
        declared = ModelVersion.model_validate(
            {**_entry_base(info, proposal, artifact_path(info)), "evaluation": {}}, strict=False
        )
        candidate = ModelUnderTest(
            proposal.artifact,
            declared.input.height,
            declared.input.width,
            declared.input.color,
            tuple(declared.output_classes),
            declared.taxonomy,
            contract_of_version(declared),
        )
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
    body = render_body(plan)
    change = forge_proposal.Proposal(
        branch=plan.branch,
        base=proposal.base,
        message=f"{plan.title}\n\n{body}",
        title=plan.title,
        body=body,
        labels=LABELS,
        author=AUTHOR,
    )
    remote = forge_proposal.remote_url(proposal.repo, proposal.remote)
    done = forge_proposal.propose(
        remote, change, lambda root: _edit(root, spec, plan, proposal, url), forge
    )
    if done is None:  # cannot happen: the edit always adds a catalogue version
        raise PermanentError(f"promoting {info.ref} changed nothing in the fleet repo")
    return ProposalResult(plan, done.pull, done.commit)


def _is_v2(mv: ModelVersion) -> bool:
    """Declares anything beyond contract v1 (v1 models are scored as they always were)."""
    plain = InputSpec(shape=mv.input.shape, color=mv.input.color)
    return mv.task != "classification" or mv.outputs != Outputs() or mv.input != plain


def _entry_base(c: CandidateInfo, proposal: PromotionRequest, url: str) -> dict[str, Any]:
    """The version's fields other than its evidence."""
    ds = proposal.dataset
    entry: dict[str, Any] = {
        "version": c.version,
        "taxonomy": ds.taxonomy,
        "output_classes": list(ds.classes),
        "artifact": {"url": url, "sha256": c.sha256, "size": c.size},
        "input": {"shape": [1, 3, proposal.input_size, proposal.input_size], "color": "rgb"},
        "opset": OPSET,
    }
    if proposal.contract is not None:
        entry = {**entry, **proposal.contract}
        entry.pop("version", None)
        entry = {"version": c.version, **entry}
    entry["execution_providers"] = ["CPUExecutionProvider"]
    entry["reference_stats"] = dict(proposal.reference_stats)
    entry["mlflow_run_id"] = c.run_id
    entry["dataset"] = ds.hash
    entry["trained_on"] = list(c.trained_on)
    return entry


def evaluation_of(plan: PromotionPlan, proposal: PromotionRequest) -> dict[str, Any]:
    return {
        d.line: d.evidence.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        for d in plan.included
        if d.evidence is not None
    }


def catalogue_entry(plan: PromotionPlan, proposal: PromotionRequest, url: str) -> dict[str, Any]:
    return {
        **_entry_base(plan.candidate, proposal, url),
        "evaluation": evaluation_of(plan, proposal),
    }


def artifact_path(c: CandidateInfo) -> str:
    return f"fleet/artifacts/{c.model}-v{c.version}.onnx"


def _edit(
    root: Path, spec: FleetSpec, plan: PromotionPlan, proposal: PromotionRequest, url: str
) -> None:
    """The promotion's change under `root` (a clone at the base), validated before commit."""
    family = spec.models.get(proposal.model)
    held = spec.model_version(plan.candidate.ref)
    if held is not None and family is not None:  # registered and catalogued already
        path = root / spec.located(family).path
        set_version_evaluation(path, plan.candidate.version, evaluation_of(plan, proposal))
    else:
        if url == artifact_path(plan.candidate):  # no registry: the file goes into git
            target = root / url
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(proposal.artifact)
        entry = catalogue_entry(plan, proposal, url)
        if family is None:
            path = root / "fleet" / "models" / f"{proposal.model}.yaml"
            new_model_family(path, proposal.model, entry, "brought from outside linefleet")
        else:
            add_model_version(root / spec.located(family).path, entry)
    for d in plan.included:
        set_shadow_candidate(root / spec.located(spec.lines[d.line]).path, plan.candidate.ref)
    validate_proposed(root)


def validate_proposed(tree: Path) -> None:
    """Refuse a proposed change under `tree` that the fleet's checks would refuse."""
    _, findings = load_checked(DirectorySource(tree))
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if errors:
        raise FindingsError(
            [
                Finding(f.path, f.line, f.col, f.field, f"(proposed change) {f.message}")
                for f in errors
            ]
        )
