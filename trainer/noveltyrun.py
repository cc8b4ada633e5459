"""`linefleet trainer novelty`: fit, record and catalogue one novelty model per line.

    results = novelty_runs(NoveltyRequest(workspace, lines=("toledo/line-1",), tracking_uri=uri))

For each line: the dataset version of the line's taxonomy (the label store as it is now); the
line's `ok` frames of the train split fit the model (`trainer.novelty`) and, scored out of fold,
choose the threshold at the requested false-alarm rate; its `ok` frames of the stable holdout
split take no part in either, so their false-alarm rate is an independent check of the asked
one. The run in MLflow gets the parameters, the threshold, that held-out false-alarm rate and
the share of the line's labelled defect frames (none of which the fit saw) at or above the
threshold, each with its 95% Wilson interval. The artifact is then registered and catalogued
exactly as `linefleet model add` does (`trainer.byom.add_model`: model contract v2, task
`anomaly`, output `score`, the threshold), as `novelty-<site>-<line>` unless named. A line
names it with `novelty: {model: NAME, version: V}`.

With `propose` (`Propose`: a forge, a remote and a base branch) nothing is written into the
working tree: the fits run as above, and the artifacts, the catalogue entries and each line's
`rollout.novelty` go into one pull request through the shared proposal flow
(`linefleet_forge.proposal`, as promotions and rollbacks), checked by the fleet's own checks
before it is committed; its body carries each line's threshold and held-out evidence.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from linefleet_core.atomic import write_atomic
from linefleet_core.catalogue import Rate
from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.floors import rate
from linefleet_core.modelio import Contract, prepare
from linefleet_core.taxonomy import Taxonomy
from linefleet_forge import proposal as forge_proposal
from linefleet_forge.base import Forge, PullRequest
from trainer.byom import Added, AddRequest, add_model
from trainer.datasets import DatasetVersion, Item, build
from trainer.frames import FrameStore
from trainer.metrics import OK
from trainer.novelty import INPUT, SCORE, NoveltyConfig, NoveltyModel, fit_novelty
from trainer.tracking import CHALLENGER, Tracker
from trainer.workspace import Workspace


@dataclass(frozen=True)
class NoveltyRequest:
    workspace: Workspace
    lines: tuple[str, ...]
    """`site/line` keys (empty: every line with ok frames in the dataset)."""
    tracking_uri: str
    taxonomy: str | None = None
    """Default: each line's declared taxonomy in the fleet repository."""
    config: NoveltyConfig = field(default_factory=NoveltyConfig)
    model: str | None = None
    """Catalogue family name (one line only); default `novelty-<site>-<line>`."""
    propose: Propose | None = None
    """Open a pull request naming the models on their lines instead of writing the tree."""


@dataclass(frozen=True)
class Propose:
    forge: Forge
    remote: str = "origin"
    base: str = "main"


@dataclass(frozen=True)
class Proposed:
    pull: PullRequest
    commit: str


@dataclass(frozen=True)
class NoveltyResult:
    line: str
    added: Added
    threshold: float
    train_frames: int
    false_alarms: Rate
    defects_flagged: Rate | None
    dataset: str


_DESCRIPTION = (
    "novelty of a line's frames (linefleet trainer novelty): higher is less like its ok frames"
)


def model_name(line: str) -> str:
    return "novelty-" + line.replace("/", "-")


def inputs(frames: FrameStore, items: Sequence[Item], contract: Contract) -> npt.NDArray[Any]:
    """The model inputs of `items`' frames, prepared as the edge prepares them."""
    if not items:
        return np.zeros((0, 3, contract.height, contract.width), np.float32)
    return np.concatenate([prepare(frames.load(i.frame), contract)[0] for i in items])


def novelty_runs(request: NoveltyRequest) -> list[NoveltyResult]:
    """Fit, register and catalogue each line's model into the fleet repository's tree."""
    if request.propose is not None:
        raise UsageError("novelty_runs writes the tree; propose_novelty opens a pull request")
    return _runs(request, request.workspace.fleet_repo)


def propose_novelty(request: NoveltyRequest) -> tuple[list[NoveltyResult], Proposed]:
    """Fit and register each line's model; propose the catalogue entries, the artifacts and
    each line's `rollout.novelty` as one pull request."""
    to = request.propose
    if to is None:
        raise UsageError("propose_novelty needs request.propose")
    from linefleet_core.spec import DirectorySource, load
    from trainer.byom import write_catalogued
    from trainer.catalogue_edit import set_novelty
    from trainer.proposal import validate_proposed

    with tempfile.TemporaryDirectory(prefix="linefleet-novelty-") as tmp:
        stage = Path(tmp)  # the fits catalogue here; the pull request carries what they wrote
        (stage / "fleet").mkdir()
        results = _runs(request, stage)
        artifacts = {r.line: (stage / r.added.artifact).read_bytes() for r in results}

        def edit(root: Path) -> None:
            spec, _ = load(DirectorySource(root))
            for r in results:
                line = spec.lines.get(r.line)
                if line is None:
                    raise UsageError(f"--line {r.line}: not a line at {to.base}")
                name, _, version = r.added.ref.partition("@")
                write_catalogued(root, name, r.added.entry, artifacts[r.line], _DESCRIPTION)
                set_novelty(root / spec.located(line).path, name, int(version))
            validate_proposed(root)

        keys = [r.line for r in results]
        slug = "-".join(k.replace("/", "-") for k in keys) if len(keys) <= 3 else (
            f"{len(keys)}-lines-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:8]
        )  # fmt: skip
        title, body = _title(results), _body(results)
        change = forge_proposal.Proposal(
            branch=f"linefleet/novelty-{slug}", base=to.base, message=f"{title}\n\n{body}",
            title=title, body=body, labels=("novelty",),
        )  # fmt: skip
        remote = forge_proposal.remote_url(request.workspace.fleet_repo, to.remote)
        done = forge_proposal.propose(remote, change, edit, to.forge)
    if done is None:  # cannot happen: each fit registers and catalogues a new version
        raise PermanentError("proposing novelty models changed nothing in the fleet repo")
    return results, Proposed(done.pull, done.commit)


def _title(results: Sequence[NoveltyResult]) -> str:
    return "novelty: " + ", ".join(f"{r.added.ref} on {r.line}" for r in results)


def _body(results: Sequence[NoveltyResult]) -> str:
    rows = [
        "Input-novelty models fitted by `linefleet trainer novelty` on each line's `ok` frames "
        "(train split; the threshold on those frames scored out of fold). The held-out `ok` "
        "frames, which neither the fit nor the threshold saw, check the false-alarm rate. "
        "Each line keeps frames far from its normal as `novel`, whatever the classifier says.",
        "",
        "| line | model | threshold | held-out ok over it | labelled defects over it | dataset |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        alarms = f"{r.false_alarms.count} of {r.false_alarms.of}"
        flagged = "—" if r.defects_flagged is None else (
            f"{r.defects_flagged.count} of {r.defects_flagged.of}"
        )  # fmt: skip
        rows.append(
            f"| {r.line} | `{r.added.ref}` | {r.threshold:.4g} | {alarms} | {flagged} | "
            f"{r.dataset[:12]} |"
        )
    return "\n".join(rows)


def _runs(request: NoveltyRequest, target: Path) -> list[NoveltyResult]:
    ws = request.workspace
    if request.model and len(request.lines) != 1:
        raise UsageError("--model names one line's novelty model: give exactly one --line")
    tracker = Tracker.open(request.tracking_uri)  # fail before the slow part
    store = ws.open_store()
    try:
        state = store.state()
        taxonomies = store.taxonomies
    finally:
        store.close()
    declared = _declared_taxonomies(ws.fleet_repo)
    lines = request.lines or tuple(sorted(declared))
    if not lines:
        raise UsageError("no --line given and the fleet repository declares no lines")
    datasets: dict[str, DatasetVersion] = {}
    results = []
    for line in lines:
        ref = request.taxonomy or declared.get(line)
        if ref is None:
            raise UsageError(f"--line {line}: not a line of {ws.fleet_repo}; give --taxonomy")
        taxonomy = taxonomies.get(ref)
        if taxonomy is None:
            raise UsageError(f"--taxonomy {ref}: no such taxonomy version in {ws.fleet_repo}")
        if ref not in datasets:
            datasets[ref] = build(state, taxonomy)
            datasets[ref].write(ws.datasets)
        name = request.model or model_name(line)
        results.append(_one_line(ws, tracker, datasets[ref], taxonomy, line, name, request, target))
    return results


def _declared_taxonomies(repo: Path) -> dict[str, str]:
    from linefleet_core.spec import DirectorySource, load

    spec, _ = load(DirectorySource(repo))
    return {key: line.taxonomy for key, line in spec.lines.items()}


def _one_line(
    ws: Workspace,
    tracker: Tracker,
    dataset: DatasetVersion,
    taxonomy: Taxonomy,
    line: str,
    name: str,
    request: NoveltyRequest,
    target: Path,
) -> NoveltyResult:
    config = request.config
    defect_classes = [c for c in taxonomy.class_ids if c != OK]
    contract = Contract(
        classes=(OK, defect_classes[0]), height=config.size, width=config.size, task="anomaly"
    )
    train = [i for i in dataset.train(line) if i.cls == OK]
    heldout = [i for i in dataset.holdout(line) if i.cls == OK]
    defects = [i for i in dataset.items if i.line_key == line and i.cls != OK]
    try:
        model = fit_novelty(
            inputs(ws.frames, train, contract), inputs(ws.frames, heldout, contract), config
        )
    except PermanentError as exc:
        raise PermanentError(f"{line} ({dataset.short}, {taxonomy.ref}): {exc}") from None
    false_alarms = sum(s >= model.threshold for s in model.heldout_scores)
    alarm_rate = rate(false_alarms, len(heldout))
    flagged = None
    if defects:
        scores = model.score(inputs(ws.frames, defects, contract))
        flagged = rate(int(np.sum(scores >= model.threshold)), len(defects))
    run_id = _log_run(tracker, name, line, dataset, model, config, alarm_rate, flagged)
    path = ws.state / "models" / f"{name}-{run_id}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, model.onnx)
    request_add = AddRequest(
        onnx=path,
        model=name,
        taxonomy=taxonomy,
        task="anomaly",
        classes=list(contract.classes),
        outputs={"score": SCORE},
        threshold=model.threshold,
        description=_DESCRIPTION,
    )
    try:
        added = add_model(request_add, tracker, target, run_id=run_id, alias=CHALLENGER)
    except Exception:
        tracker.client.set_terminated(run_id, "FAILED")
        raise
    return NoveltyResult(
        line, added, model.threshold, model.train_frames, alarm_rate, flagged, dataset.hash
    )


def _metrics(
    threshold: float, train_frames: int, alarms: Rate, flagged: Rate | None
) -> dict[str, float]:
    out = {
        "threshold": threshold,
        "train_ok_frames": float(train_frames),
        "heldout_ok_frames": float(alarms.of),
        "heldout_false_alarm_rate": alarms.value,
        "heldout_false_alarm_rate_low": alarms.low,
        "heldout_false_alarm_rate_high": alarms.high,
    }
    if flagged is not None:
        out.update(
            {
                "defect_frames": float(flagged.of),
                "defects_flagged_rate": flagged.value,
                "defects_flagged_rate_low": flagged.low,
                "defects_flagged_rate_high": flagged.high,
            }
        )
    return out


def _log_run(
    tracker: Tracker,
    name: str,
    line: str,
    dataset: DatasetVersion,
    model: NoveltyModel,
    config: NoveltyConfig,
    alarms: Rate,
    flagged: Rate | None,
) -> str:
    """Open the run with its parameters, metrics and held-out scores (the registry's artifact
    is logged to it by `add_model`, which finishes it)."""
    from mlflow.entities import Metric, Param

    tags = {
        "linefleet.model": name,
        "linefleet.kind": "novelty",
        "linefleet.line": line,
        "linefleet.dataset": dataset.hash,
        "linefleet.taxonomy": dataset.taxonomy,
        "linefleet.trained_on": line,
    }
    run_id = tracker.start(tags)
    try:
        params = {**config.params(), "model": name, "line": line, "input": INPUT}
        params.update(dataset=dataset.hash, taxonomy=dataset.taxonomy)
        metrics = _metrics(model.threshold, model.train_frames, alarms, flagged)
        tracker.client.log_batch(
            run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in sorted(metrics.items())],
            params=[Param(k, str(v)) for k, v in sorted(params.items())],
            tags=[],
        )
        with tempfile.TemporaryDirectory() as tmp:
            doc = Path(tmp) / "heldout_scores.json"
            body = {"threshold": model.threshold, "ok_scores": list(model.heldout_scores)}
            doc.write_text(json.dumps(body, indent=2), encoding="utf-8")
            tracker.client.log_artifact(run_id, str(doc))
    except Exception:
        tracker.client.set_terminated(run_id, "FAILED")
        raise
    return run_id
