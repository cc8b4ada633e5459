"""`linefleet trainer …`: promotion pull requests, the watcher that starts training runs, and
the lines' novelty models.

    linefleet trainer promote --run RUN_ID --fleet-repo DIR --forge local
    linefleet trainer watch --model surface-classifier --min-new-labels 200 --broker mqtt://h:1883
    linefleet trainer novelty --line toledo/line-1 --false-alarm-rate 0.01

Exit codes: 0 pull request opened or updated, 1 no line qualifies / invalid change / forge
refused, 2 usage, 4 forge or git remote unreachable. `trainer champion` exits 0 also when
there is nothing to point the alias at (it says why), 2 for a model not in the catalogue.
`trainer novelty` exits 0 when every line got its model, 1 when a line has too few ok frames
or the entry fails the catalogue's checks, 2 on usage.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linefleet.options import add_workspace_options, number, seconds
from linefleet_core.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from linefleet_core.wire import Approval


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trainer", help="promotion pull requests from MLflow training runs")
    cmds = p.add_subparsers(dest="trainer_command", metavar="ACTION", required=True)
    c = cmds.add_parser(
        "promote",
        help="evaluate a run per line against each incumbent; open a promotion PR",
        description="Evaluate the run's model on every line's holdout against the line's "
        "incumbent; propose it in shadow where it matches or beats it (policy tolerance).",
    )
    add_workspace_options(c)
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", dest="run_id", help="MLflow run id (from `linefleet train`)")
    which.add_argument(
        "--model-version",
        metavar="NAME@V",
        help="a registered model version (from `linefleet model add`); scored on the label "
        "store's current dataset for its taxonomy",
    )
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    c.add_argument("--forge", default="local", help="local | github://O/R | gitea://H/O/R")
    c.add_argument("--remote", default="origin")
    c.add_argument("--base", default="main")
    c.add_argument(
        "--push",
        metavar="oci://HOST/REPO",
        help="push the ONNX to this OCI registry repository and catalogue it by digest instead "
        "of committing it (credentials: LINEFLEET_REGISTRY_USERNAME/_PASSWORD or _TOKEN)",
    )
    c.set_defaults(run=run_promote)
    register_watch(cmds)
    c = cmds.add_parser(
        "champion",
        help="point the registry's champion alias at the model version that serves",
        description="Level-triggered: the newest catalogue version of --model that serves on "
        "a line and comes from a run in this tracking store becomes the registry's "
        "`champion`; newer serving versions without such a run are skipped with a notice. "
        "Exit 0 (also when there is nothing to do), 2 for a model not in the catalogue.",
    )
    add_workspace_options(c)
    c.add_argument("--model", required=True)
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    c.set_defaults(run=run_champion)
    register_novelty(cmds)


def register_novelty(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # the defaults are NoveltyConfig's, filled in by run_novelty: building the parser must not
    # import the trainer (an edge device parses `linefleet edge ...` without it)
    c = cmds.add_parser(
        "novelty",
        help="fit a novelty model per line on its ok frames; register and catalogue it",
        description="Fit Gaussian statistics of patch features and of colour and grey deviation "
        "maps on each line's ok frames (train split of the label store's dataset), choose the "
        "threshold on its held-out ok frames "
        "at --false-alarm-rate, record the run in MLflow, register it and write the catalogue "
        "entry (task anomaly) and artifact into --fleet-repo, as `linefleet model add` does; "
        "with --propose, open one pull request instead that adds them and names each model "
        "under its line's `rollout.novelty`.",
    )
    add_workspace_options(c)
    c.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="SITE/LINE",
        help="a line to fit (repeatable; default: every line of the fleet repository)",
    )
    c.add_argument("--taxonomy", help="taxonomy version (default: each line's declared one)")
    c.add_argument("--model", help="catalogue family (one line; default novelty-SITE-LINE)")
    c.add_argument(
        "--false-alarm-rate",
        type=number,
        help="share of held-out ok frames allowed over the threshold (default 0.01)",
    )
    c.add_argument("--size", type=int, help="input size in pixels, a multiple of 32 (default 128)")
    c.add_argument("--patch", type=int, help="patch side in pixels (default 16)")
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    c.add_argument(
        "--propose",
        action="store_true",
        help="propose the models on their lines as a pull request (nothing written locally)",
    )
    c.add_argument("--forge", default="local", help="with --propose: local | github://O/R | ...")
    c.add_argument("--remote", default="origin", help="with --propose: the fleet repo's remote")
    c.add_argument("--base", default="main", help="with --propose: the branch to propose onto")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_novelty)


def run_novelty(ns: argparse.Namespace) -> int:
    import json

    from trainer.novelty import GREY_BLOCK, NoveltyConfig
    from trainer.noveltyrun import NoveltyRequest, Propose, novelty_runs, propose_novelty
    from trainer.tracking import default_uri
    from trainer.workspace import Workspace

    defaults = NoveltyConfig()
    for name in ("false_alarm_rate", "size", "patch"):
        if getattr(ns, name) is None:
            setattr(ns, name, getattr(defaults, name))
    if not 0 < ns.false_alarm_rate < 1:
        raise UsageError(f"--false-alarm-rate {ns.false_alarm_rate}: a fraction in (0, 1)")
    if ns.size < GREY_BLOCK or ns.patch < 2 or ns.size % ns.patch or ns.size % GREY_BLOCK:
        raise UsageError(
            f"--size {ns.size} must be a multiple of --patch {ns.patch} (>= 2) and of {GREY_BLOCK}"
        )
    request = NoveltyRequest(
        workspace=Workspace(state=ns.state, fleet_repo=ns.fleet_repo, labels_url=ns.labels),
        lines=tuple(ns.line),
        tracking_uri=ns.tracking_uri or default_uri(ns.state),
        taxonomy=ns.taxonomy,
        config=NoveltyConfig(size=ns.size, patch=ns.patch, false_alarm_rate=ns.false_alarm_rate),
        model=ns.model,
    )
    pulled = None
    if ns.propose:
        from linefleet_forge import forge_from_spec

        to = Propose(forge_from_spec(ns.forge, ns.fleet_repo), ns.remote, ns.base)
        results, pulled = propose_novelty(replace(request, propose=to))
    else:
        results = novelty_runs(request)
    if ns.format == "json":
        doc = [
            {
                "line": r.line,
                "model_version": r.added.ref,
                "mlflow_run_id": r.added.run_id,
                "artifact": r.added.artifact,
                "threshold": r.threshold,
                "train_ok_frames": r.train_frames,
                "heldout_false_alarms": r.false_alarms.model_dump(),
                "defects_flagged": None
                if r.defects_flagged is None
                else r.defects_flagged.model_dump(),
                "dataset": r.dataset,
            }
            for r in results
        ]
        out: dict[str, Any] = {"format_version": 1, "novelty": doc}
        if pulled is not None:
            out["pull_request"] = {"number": pulled.pull.number, "url": pulled.pull.url}
        print(json.dumps(out, indent=2, sort_keys=True))
        return int(ExitCode.OK)
    from trainer.evidence import show

    for r in results:
        name, _, version = r.added.ref.partition("@")
        flagged = "no labelled defect frames" if r.defects_flagged is None else (
            f"defect frames flagged {r.defects_flagged.count} of {r.defects_flagged.of}: "
            f"{show(r.defects_flagged)}"
        )  # fmt: skip
        print(f"{r.line}: {r.added.ref} (run {r.added.run_id}), threshold {r.threshold:.4g}")
        print(f"  fitted on {r.train_frames} ok frame(s); held-out ok frames over the threshold "
              f"{r.false_alarms.count} of {r.false_alarms.of}: {show(r.false_alarms)}")  # fmt: skip
        print(f"  {flagged}")
        if pulled is None:
            print(f"  wrote {r.added.artifact} and {r.added.catalogue}")
            print(f"  name it under the line's rollout: novelty: {{model: {name}, "
                  f"version: {version}}}")  # fmt: skip
    if pulled is not None:
        print(f"pull request #{pulled.pull.number}: rollout.novelty on {len(results)} line(s) "
              f"({pulled.pull.url})")  # fmt: skip
    return int(ExitCode.OK)


def run_promote(ns: argparse.Namespace) -> int:
    from linefleet_forge import forge_from_spec
    from trainer.datasets import load_manifest
    from trainer.proposal import PromotionRequest, propose
    from trainer.tracking import Tracker, default_uri, fetch_run
    from trainer.workspace import Workspace

    push_credentials = None
    if ns.push is not None:
        from linefleet.options import credentials_for
        from linefleet_core.oci import OciError, parse_repo

        try:
            host, _ = parse_repo(ns.push)
        except OciError as exc:
            raise UsageError(f"--push {exc}") from None
        push_credentials = credentials_for(host, None)
    ws = Workspace(state=ns.state, fleet_repo=ns.fleet_repo, labels_url=ns.labels)
    forge = forge_from_spec(ns.forge, ns.fleet_repo)
    tracker = Tracker.open(ns.tracking_uri or default_uri(ns.state))
    if ns.model_version:
        return _promote_version(ns, ws, forge, tracker)
    with tempfile.TemporaryDirectory() as tmp:
        run = fetch_run(tracker, ns.run_id, Path(tmp))
        dataset = load_manifest(run.manifest)
    proposal = PromotionRequest(
        repo=ns.fleet_repo,
        model=run.model,
        artifact=run.onnx,
        input_size=run.input_size,
        dataset=dataset,
        run_id=run.run_id,
        reference_stats=run.reference_stats,
        remote=ns.remote,
        base=ns.base,
        push_to=ns.push,
        push_credentials=push_credentials,
        trained_on=run.trained_on,
    )
    result = propose(proposal, forge, ws.frames, ws.taxonomies())
    _print(result)
    if result.pull is not None:
        tracker.client.set_tag(run.run_id, "linefleet.proposed", result.plan.candidate.ref)
        tracker.client.set_tag(run.run_id, "linefleet.pull_request", str(result.pull.number))
    return int(ExitCode.OK)


def _print(result: Any) -> None:
    plan = result.plan
    for d in plan.included:
        print(f"  proposed  {d.line:<24} {d.reason}")
    for d in plan.left_out:
        print(f"  left out  {d.line:<24} {d.reason}")
    if result.pull is not None:
        print(f"pull request #{result.pull.number}: {plan.title} ({result.pull.url})")


def _promote_version(ns: argparse.Namespace, ws: Any, forge: Any, tracker: Any) -> int:
    """`--model-version NAME@V`: a model from `linefleet model add`, scored and proposed like
    a run of ours, on the label store's current dataset version for its taxonomy."""
    from trainer.byom import fetch_model_version
    from trainer.datasets import build
    from trainer.proposal import PromotionRequest, propose

    fetched = fetch_model_version(tracker, ns.model_version)
    taxonomy = ws.taxonomies().get(str(fetched.entry.get("taxonomy")))
    if taxonomy is None:
        raise UsageError(f"{ns.model_version}: taxonomy {fetched.entry.get('taxonomy')} unknown")
    store = ws.open_store()
    try:
        dataset = build(store.state(), taxonomy)
        dataset.write(ws.datasets)
    finally:
        store.close()
    proposal = PromotionRequest(
        repo=ns.fleet_repo,
        model=fetched.model,
        artifact=fetched.onnx,
        input_size=0,
        dataset=dataset,
        run_id=fetched.run_id,
        reference_stats={},
        remote=ns.remote,
        base=ns.base,
        version=fetched.version,
        contract=fetched.entry,
    )
    result = propose(proposal, forge, ws.frames, ws.taxonomies())
    _print(result)
    if result.pull is not None:
        tracker.client.set_tag(fetched.run_id, "linefleet.proposed", result.plan.candidate.ref)
        tracker.client.set_tag(fetched.run_id, "linefleet.pull_request", str(result.pull.number))
    return int(ExitCode.OK)


def register_watch(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = cmds.add_parser(
        "watch",
        help="train when enough new labels arrive or a line drifts (one run per dataset)",
        description="Level-triggered: every --interval seconds, read the labels (and the "
        "devices' drift scores with --broker) and train when a trigger holds. A dataset "
        "version is trained at most once.",
    )
    add_workspace_options(c)
    c.add_argument("--model", required=True)
    c.add_argument("--taxonomy", help="taxonomy version (default: newest of the family's)")
    c.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under --state)")
    c.add_argument("--min-new-labels", type=int, default=200)
    c.add_argument("--broker", help="mqtt://HOST:PORT: read the lines' drift scores")
    c.add_argument("--interval", type=seconds, default=60.0)
    c.add_argument("--once", action="store_true", help="one pass, then exit")
    c.set_defaults(run=run_watch)


def run_watch(ns: argparse.Namespace) -> int:
    import time

    from linefleet_core.spec import DirectorySource, load
    from trainer.mqtt_listen import read_drift
    from trainer.run import TrainRequest
    from trainer.tracking import default_uri
    from trainer.watch import tick
    from trainer.workspace import Workspace

    ws = Workspace(state=ns.state, fleet_repo=ns.fleet_repo, labels_url=ns.labels)
    request = TrainRequest(
        workspace=ws,
        model=ns.model,
        tracking_uri=ns.tracking_uri or default_uri(ns.state),
        taxonomy=ns.taxonomy,
    )
    while True:
        spec, _ = load(DirectorySource(ns.fleet_repo))
        devices = [(d.site, d.id) for d in spec.devices.values()]
        drift = read_drift(ns.broker, devices) if ns.broker else {}
        result = tick(request, ns.min_new_labels, drift, spec.policy.health_gates.max_drift_score)
        run = f" -> MLflow run {result.run_id}" if result.run_id else ""
        print(f"{result.decision.verdict.value}: {result.decision.reason}{run}", flush=True)
        if ns.once:
            return int(ExitCode.OK)
        time.sleep(ns.interval)


def run_champion(ns: argparse.Namespace) -> int:
    from linefleet_core.errors import UsageError
    from linefleet_core.spec import DirectorySource, load
    from trainer.tracking import Tracker, default_uri, sync_champion

    spec, _ = load(DirectorySource(ns.fleet_repo))
    if ns.model not in spec.models:
        known = ", ".join(sorted(spec.models)) or "none"
        raise UsageError(f"--model {ns.model}: not in the model catalogue (known: {known})")
    tracker = Tracker.open(ns.tracking_uri or default_uri(ns.state))
    result = sync_champion(tracker, spec, ns.model, _lineage(ns.fleet_repo))
    for why in result.skipped:
        print(f"  skipped {why}")
    if result.champion is not None:
        moved = "->" if result.changed else "already at"
        print(f"{ns.model}: champion {moved} registry version {result.version} ({result.champion})")
        if result.approval is not None:
            print(f"  approved by {result.approval.by} via {result.approval.via}")
    elif not result.serving:
        print(f"{ns.model}: no version serves on any line; nothing to do")
    else:
        print(
            f"{ns.model}: no serving version comes from a run in {tracker.uri}; champion "
            "unchanged, nothing to do.\n"
            "  The champion follows models trained here: train with `linefleet train` and "
            "propose with `linefleet trainer promote --run RUN`, or pass the --tracking-uri "
            "of the store that holds the runs the catalogue names."
        )
    return int(ExitCode.OK)


def _lineage(fleet_repo: Path) -> Callable[[str], Approval | None] | None:
    """Who approved the commit that made a catalogue version serve (None outside git)."""
    from linefleet_core.errors import UsageError
    from linefleet_forge.approval import approval_of, promoted_in
    from linefleet_forge.gitrepo import open_repo

    try:
        repo = open_repo(fleet_repo)
    except UsageError:
        return None  # a folder, not a repository: no history to read the approver from

    def lineage(ref: str) -> Approval | None:
        commit = promoted_in(repo, "HEAD", ref)
        return None if commit is None else approval_of(repo, commit)

    return lineage
