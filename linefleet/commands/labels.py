"""`linefleet labels …`: the label store (import, tasks, review, QA, overrides, datasets, quality).

Exit codes: 0 ok, 1 refused input (nothing written), 2 usage, 4 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from linefleet.options import add_workspace_options, seconds
from linefleet_core.errors import ExitCode, UsageError, need_directory


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("labels", help="the label store: import, tasks, review, QA, datasets")
    cmds = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)

    c = cmds.add_parser(
        "import",
        help="import annotations: JSON Lines, a folder per class, or an MVTec AD category",
        description="Site, line and camera are checked against the fleet in --fleet-repo "
        "(when it declares lines); every problem is located; nothing is written unless all "
        "is well.",
    )
    c.add_argument(
        "file",
        type=Path,
        help="JSON Lines file (or `linefleet data generate`'s manifest), a folder tree, or an "
        "MVTec AD category folder",
    )
    c.add_argument(
        "--layout",
        choices=("auto", "jsonl", "folder", "mvtec"),
        default="auto",
        help="auto: a file is JSON Lines; a folder with train/ and test/ is MVTec AD; any "
        "other folder is a tree of class folders",
    )
    c.add_argument(
        "--levels",
        default="class",
        help="folder: the sub-folder levels above each image, e.g. site/line/camera/class "
        "(default: class)",
    )
    c.add_argument("--site", help="folder/mvtec: the site of every image (or a `site` level)")
    c.add_argument("--line", help="folder/mvtec: the line of every image (or a `line` level)")
    c.add_argument("--camera", help="folder/mvtec: the camera (or a `camera` level)")
    c.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FOLDER=CLASS",
        help="folder/mvtec: a folder name that is not a class name (repeatable; MVTec's "
        "`good` is `ok`)",
    )
    c.add_argument("--annotator", help="for rows without an annotator")
    c.add_argument("--taxonomy", help="for rows without a taxonomy version (name@N)")
    c.set_defaults(run=run_import)

    c = cmds.add_parser(
        "tasks", help="list open tasks: re-reviews, audits, overrides to QA, field samples"
    )
    c.add_argument("--kind", choices=("review", "audit", "override", "sample"))
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_tasks)

    c = cmds.add_parser(
        "review", help="resolve a re-review task, or label a field sample, by choosing the class"
    )
    c.add_argument("task", type=int)
    c.add_argument("--class", dest="cls", required=True)
    c.add_argument("--reviewer", required=True)
    c.add_argument(
        "--taxonomy", help="sample tasks: the label's taxonomy version (default: the line's)"
    )
    c.set_defaults(run=run_review)

    c = cmds.add_parser(
        "escapes",
        help="field escape rate per line from labelled audit samples (Wilson 95%%)",
        description="Of the frames the edge sampled among those its model called ok, the "
        "share a human labelled as a defect, per line, with its 95%% Wilson interval.",
    )
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_escapes)

    c = cmds.add_parser(
        "qa",
        help="confirm or reject inspector overrides (or audit labels)",
        description="One verdict for every ID given, written in one transaction: all or none.",
    )
    c.add_argument("ids", metavar="ID", type=int, nargs="+")
    verdict = c.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--confirm", action="store_true")
    verdict.add_argument("--reject", action="store_true")
    c.add_argument("--reviewer", required=True)
    c.set_defaults(run=run_qa)

    c = cmds.add_parser("migrate", help="move labels to the newest taxonomy versions in git")
    c.set_defaults(run=run_migrate)

    c = cmds.add_parser("ingest-events", help="queue inspector overrides sent by the edge")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "file",
        nargs="?",
        type=Path,
        help="JSON Lines of edge events, or an air-gap export (`linefleet edge export`)",
    )
    src.add_argument("--broker", help="mqtt://HOST:PORT: read events and frames for a while")
    c.add_argument("--frames", type=Path, help="folder of LFF1 frame payloads (*.lff)")
    c.add_argument("--seconds", type=seconds, default=5.0, help="with --broker: listen this long")
    c.set_defaults(run=run_ingest)

    c = cmds.add_parser("dataset", help="build and record a dataset version")
    c.add_argument("--taxonomy", required=True, help="taxonomy version, e.g. surface-defects@2")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_dataset)

    c = cmds.add_parser("queue", help="rank unlabelled frames by model uncertainty")
    c.add_argument("--model", required=True, type=Path, help="an ONNX artifact (the contract)")
    c.add_argument(
        "--strategy", choices=("least-confidence", "margin", "entropy"), default="margin"
    )
    c.add_argument("--color", choices=("rgb", "bgr", "gray"), default="rgb")
    c.add_argument("--limit", type=int, default=50)
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_queue)

    c = cmds.add_parser("quality", help="annotator agreement (Cohen, Fleiss), audits, drift")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.set_defaults(run=run_quality)

    for action in cmds.choices.values():
        add_workspace_options(action)


def workspace(ns: argparse.Namespace) -> Any:
    from trainer.workspace import Workspace

    return Workspace(state=ns.state, fleet_repo=ns.fleet_repo, labels_url=ns.labels)


def run_import(ns: argparse.Namespace) -> int:
    from trainer.folders import import_folder, import_mvtec
    from trainer.imports import import_annotations
    from trainer.places import Places

    ws = workspace(ns)
    layout = ns.layout
    if layout == "auto":
        if ns.file.is_dir():
            mvtec = (ns.file / "train").is_dir() and (ns.file / "test").is_dir()
            layout = "mvtec" if mvtec else "folder"
        else:
            layout = "jsonl"
    places = Places.load(ns.fleet_repo)
    if places is None:
        print(
            f"note: {ns.fleet_repo} declares no lines; site, line and camera are not checked",
            file=sys.stderr,
        )
    mapping: dict[str, str] = {}
    for item in ns.map:
        folder, sep, cls = item.partition("=")
        if not sep or not folder or not cls:
            raise UsageError(f"--map {item!r}: expected FOLDER=CLASS")
        mapping[folder] = cls
    fixed = {"site": ns.site, "line": ns.line, "camera": ns.camera}
    store = ws.open_store()
    common: dict[str, Any] = {
        "annotator": ns.annotator, "taxonomy": ns.taxonomy, "places": places,
    }  # fmt: skip
    if layout == "jsonl":
        result = import_annotations(ns.file, store, ws.frames, **common)
    elif layout == "mvtec":
        result = import_mvtec(ns.file, store, ws.frames, fixed=fixed, class_map=mapping, **common)
    else:
        levels = tuple(v for v in ns.levels.split("/") if v)
        result = import_folder(
            ns.file, store, ws.frames, levels=levels, fixed=fixed, class_map=mapping, **common
        )
    already = f"; {result.already} already imported" if result.already else ""
    print(
        f"imported {result.events} annotation(s), {result.new_frames} new frame(s) "
        f"({layout}){already}"
    )
    return int(ExitCode.OK)


def run_tasks(ns: argparse.Namespace) -> int:
    store = workspace(ns).open_store(existing=True)
    tasks = [t for t in store.state().tasks() if ns.kind in (None, t.kind.value)]
    if ns.format == "json":
        doc = [
            {
                "id": t.id,
                "kind": t.kind.value,
                "frame": t.frame,
                "line": t.line_key,
                "summary": t.summary,
                "choices": list(t.choices),
            }
            for t in tasks
        ]
        json.dump({"format_version": 1, "tasks": doc}, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)
    for t in tasks:
        choices = f"  [{' | '.join(t.choices)}]" if t.choices else ""
        print(f"{t.id:>6}  {t.kind.value:<8} {t.line_key:<24} {t.frame[:12]}  {t.summary}{choices}")
    print(f"{len(tasks)} open task(s)")
    return int(ExitCode.OK)


def run_review(ns: argparse.Namespace) -> int:
    from trainer.events import EventKind, NewEvent

    ws = workspace(ns)
    store = ws.open_store(existing=True)
    state = store.state()
    if ns.task in state.samples:
        return _label_sample(ws, store, state, ns)
    pending = state.migrations.get(ns.task)
    if pending is None:
        raise UsageError(f"task {ns.task} is not an open re-review task (see `labels tasks`)")
    label = state.labels[pending[0]]
    store.append(
        [
            NewEvent(
                EventKind.REVIEW, ns.reviewer, target=ns.task, cls=ns.cls, taxonomy=label.taxonomy
            )
        ]
    )
    print(f"label {label.id} is now {ns.cls} ({label.taxonomy}); run `labels migrate` to carry on")
    return int(ExitCode.OK)


def _label_sample(ws: Any, store: Any, state: Any, ns: argparse.Namespace) -> int:
    from linefleet_core.spec import DirectorySource, load
    from trainer.audits import sample_label

    line = state.samples[ns.task].line_key
    taxonomy = ns.taxonomy
    if taxonomy is None:
        spec, _ = load(DirectorySource(ws.fleet_repo))
        declared = spec.lines.get(line)
        if declared is None:
            raise UsageError(f"task {ns.task}: {line} is not a line of {ws.fleet_repo}; give "
                             "--taxonomy")  # fmt: skip
        taxonomy = declared.taxonomy
    store.append([sample_label(state, ns.task, ns.cls, ns.reviewer, taxonomy)])
    print(f"sample {ns.task} on {line} labelled {ns.cls} ({taxonomy})")
    return int(ExitCode.OK)


def run_escapes(ns: argparse.Namespace) -> int:
    from trainer.audits import field_escapes
    from trainer.evidence import show

    found = field_escapes(workspace(ns).open_store(existing=True).state())
    if ns.format == "json":
        doc = {line: f.to_json() for line, f in found.items()}
        json.dump({"format_version": 1, "field_escapes": doc}, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)
    for line, f in found.items():
        estimate = "no labelled samples yet" if f.rate is None else (
            f"{f.rate.count} of {f.rate.of} defective: {show(f.rate)}"
        )  # fmt: skip
        print(f"{line:<24} {f.sampled:>5} sampled, {f.labelled:>5} labelled  {estimate}")
    if not found:
        print("no audit samples from the edge yet (`labels ingest-events` stores them)")
    return int(ExitCode.OK)


def run_qa(ns: argparse.Namespace) -> int:
    from trainer.events import Decision, EventKind, NewEvent

    twice = sorted({i for i in ns.ids if ns.ids.count(i) > 1})
    if twice:
        raise UsageError(f"ID {', '.join(map(str, twice))}: given more than once")
    store = workspace(ns).open_store(existing=True)
    decision = Decision.CONFIRM if ns.confirm else Decision.REJECT
    store.append(
        [NewEvent(EventKind.QA, ns.reviewer, target=i, detail=decision.value) for i in ns.ids]
    )
    for target in ns.ids:
        print(f"event {target}: {decision.value}ed by {ns.reviewer}")
    return int(ExitCode.OK)


def run_migrate(ns: argparse.Namespace) -> int:
    from collections import Counter

    from trainer.migrations import plan_migrations

    store = workspace(ns).open_store()
    moved: Counter[str] = Counter()
    names = sorted({t.name for t in store.taxonomies.values()})
    for name in names:
        while plan := plan_migrations(store.state(), store.taxonomies, name):
            store.append(plan)
            moved.update(e.detail or "" for e in plan)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(moved.items())) or "nothing to do"
    reviews = moved["split"] + moved["deprecated"]
    print(f"migrated: {summary}; {reviews} label(s) need review (`labels tasks --kind review`)")
    return int(ExitCode.OK)


def run_ingest(ns: argparse.Namespace) -> int:
    from linefleet_core.bundle import BundleError, is_export, read_export
    from trainer.overrides import ingest
    from trainer.places import Places

    ws = workspace(ns)
    event_names: list[str] = []
    frame_names: list[str] = []
    unreadable: list[str] = []
    if ns.broker:
        from trainer.mqtt_listen import listen_named

        events, frames, topics, frame_topics = listen_named(ns.broker, ns.seconds)
        event_names = [f"{t} message {n}" for n, t in enumerate(topics, 1)]
        frame_names = [f"{t} message {n}" for n, t in enumerate(frame_topics, 1)]
    elif is_export(ns.file):  # an air-gapped device's `linefleet edge export`
        try:
            messages, spooled = read_export(ns.file)
        except BundleError as exc:
            raise UsageError(str(exc)) from None
        events = [m.payload for m in messages if m.kind == "event"]
        frames = [m.payload for m in messages if m.kind == "frame"] + spooled
    else:
        from linefleet_core import jsonlines

        try:
            data = ns.file.read_bytes()
        except OSError as exc:
            raise UsageError(f"{ns.file}: cannot read ({exc.strerror or exc})") from None
        numbered = [row for row in jsonlines.lines(data) if row[1].strip() or row[2]]
        unreadable += [f"{ns.file}:{n}: {problem}" for n, _, problem in numbered if problem]
        events = [text.encode() for _, text, problem in numbered if not problem]
        event_names = [f"{ns.file}:{n}" for n, _, problem in numbered if not problem]
        frames = []
        if ns.frames:
            need_directory("--frames", ns.frames)
            for path in sorted(ns.frames.glob("*.lff")):
                try:  # one unreadable file (a folder, a dangling link) must not stop the rest
                    frames.append(path.read_bytes())
                except OSError as exc:
                    unreadable.append(f"{path}: cannot read ({exc.strerror or exc})")
                    continue
                frame_names.append(str(path))
    report = ingest(
        ws.open_store(),
        ws.frames,
        events,
        frames,
        event_names=event_names,
        frame_names=frame_names,
        places=Places.load(ws.fleet_repo),
    )
    report.invalid[:0] = unreadable
    for problem in report.invalid:
        print(f"skipped: {problem}", file=sys.stderr)
    ignored = sum(report.ignored.values())
    print(
        f"queued {report.queued} override(s) for QA, {report.frames} frame(s) stored, "
        f"{report.samples} audit sample(s) to label, "
        f"{report.duplicates} duplicate(s), {len(report.waiting_for_frame)} waiting for "
        f"their frame, {len(report.invalid)} invalid, {ignored} other event(s) ignored"
    )
    return int(ExitCode.INVALID if report.invalid else ExitCode.OK)


def run_dataset(ns: argparse.Namespace) -> int:
    from trainer.datasets import build

    ws = workspace(ns)
    store = ws.open_store(existing=True)
    taxonomy = store.taxonomies.get(ns.taxonomy)
    if taxonomy is None:
        raise UsageError(f"--taxonomy {ns.taxonomy}: no such taxonomy version in {ws.fleet_repo}")
    version = build(store.state(), taxonomy)
    path = version.write(ws.datasets)
    store.record_dataset(version.hash, version.taxonomy, len(version.items), version.last_event)
    if ns.format == "json":
        doc = {
            "format_version": 1,
            "hash": version.hash,
            "taxonomy": version.taxonomy,
            "frames": len(version.items),
            "lines": {
                key: {"train": len(version.train(key)), "holdout": len(version.holdout(key))}
                for key in version.lines()
            },
            "excluded": version.excluded,
            "manifest": str(path),
        }
        json.dump(doc, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)
    print(f"dataset {version.short} ({version.taxonomy}): {len(version.items)} frame(s)")
    for key in version.lines():
        train, holdout = len(version.train(key)), len(version.holdout(key))
        print(f"  {key:<24} train {train:>6}  holdout {holdout:>6}")
    for reason, n in version.excluded.items():
        print(f"  left out: {n} label(s) {reason}")
    print(f"manifest: {path}")
    return int(ExitCode.OK)


def run_quality(ns: argparse.Namespace) -> int:
    from dataclasses import asdict

    from trainer.quality import report

    store = workspace(ns).open_store(existing=True)
    rep = report(store.state())
    if ns.format == "json":
        json.dump({"format_version": 1, **asdict(rep)}, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)

    def k(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.2f}"

    print(f"double-labelled frames: {rep.double_labelled}")
    print(f"Fleiss' kappa overall: {k(rep.fleiss)}")
    for cls, value in sorted(rep.fleiss_per_class.items()):
        print(f"  {cls:<20} {k(value)}")
    for pair in rep.pairs:
        print(f"Cohen's kappa {pair.a} / {pair.b}: {k(pair.kappa)} on {pair.frames} frame(s)")
    for a in rep.annotators:
        flag = "  DRIFTING: agreement fell" if a.drifting else ""
        trend = f"agreement {k(a.agreement_early)} -> {k(a.agreement_recent)}"
        print(
            f"{a.name:<16} {a.labels:>6} label(s), audit open {a.audit_open}, "
            f"rejected {a.audit_rejected}, {trend}{flag}"
        )
    return int(ExitCode.OK)


def run_queue(ns: argparse.Namespace) -> int:
    import numpy as np

    from trainer.active import artifact_operating_point, rank
    from trainer.features import to_tensor
    from trainer.train import predict_with, session_for

    ws = workspace(ns)
    store = ws.open_store(existing=True)
    state = store.state()
    busy = {lab.frame for lab in state.labels.values()}
    busy |= {ov.frame for ov in state.overrides.values() if ov.frame}
    todo = sorted(sha for sha in store.frames() if sha not in busy)
    try:
        model = ns.model.read_bytes()
        session = session_for(model)
        ok, ok_scale = artifact_operating_point(model)  # ranked with it divided back out
    except Exception as exc:
        raise UsageError(f"--model {ns.model}: not a loadable ONNX model ({exc})") from None
    _, _, height, width = session.get_inputs()[0].shape
    probs = [
        predict_with(session, to_tensor(ws.frames.load(sha), height, width, ns.color))[0]
        for sha in todo
    ]
    ranked = rank(todo, np.array(probs), ns.strategy, ok, ok_scale)[: ns.limit] if todo else []
    if ns.format == "json":
        doc = {"format_version": 1, "strategy": ns.strategy, "unlabelled": len(todo)}
        doc["queue"] = [{"frame": f, "uncertainty": round(u, 6)} for f, u in ranked]
        json.dump(doc, sys.stdout, indent=2)
        print()
        return int(ExitCode.OK)
    for frame, score in ranked:
        print(f"{score:.4f}  {frame}")
    print(f"{len(ranked)} of {len(todo)} unlabelled frame(s), most uncertain first ({ns.strategy})")
    return int(ExitCode.OK)
