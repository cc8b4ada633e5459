"""Checks across files: references, taxonomy compatibility, device capability, migrations.

These hold for any single revision of the fleet. Checks on a *change* between two revisions
(rollout steps, evidence, freeze windows) are the reconciler's rollout policy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from linefleet_core import artifactref, yamlsafe
from linefleet_core import spec as fleetspec
from linefleet_core.catalogue import ModelFamily, ModelVersion, too_many_tiles
from linefleet_core.errors import Finding, Severity
from linefleet_core.fleet import EdgeDevice, Line
from linefleet_core.gcpause import paused_gc
from linefleet_core.oci import REF_PATTERN, OciError, is_oci, parse_ref
from linefleet_core.spec import FleetSpec
from linefleet_core.taxonomy import Taxonomy, class_mapping
from linefleet_core.wire import MAX_INPUT_SIDE

Path = tuple[str | int, ...]


def load_checked(
    source: fleetspec.Source,
    checks: fleetspec.Checks | None = None,
    *,
    fetch_artifacts: bool = False,
    parsed: yamlsafe.ParsedBlobs | None = None,
) -> tuple[FleetSpec, list[Finding]]:
    """Load one revision and run every single-revision check on it, artifacts included (the
    repository's files in that revision; remote ones too with `fetch_artifacts`). The PR
    check, publish, the broker config and the promotion PR all read a fleet this way.

    `checks` shares the per-file work with other revisions loaded with the same one;
    `parsed` reuses documents parsed by an earlier run (`fleetspec.load`).
    """
    # Loading and checking build objects that survive or die by reference counting: cycle
    # collection would walk the growing fleet again and again (on 10,000 lines, collections
    # triggered inside the checks cost more CPU than the checks).
    with paused_gc():
        spec, findings = fleetspec.load(source, checks, parsed)
        findings.extend(check(spec))
        findings.extend(artifacts(spec, source, fetch=fetch_artifacts))
    return spec, findings


def check(spec: FleetSpec) -> list[Finding]:
    """Every cross-file problem of one fleet revision, errors and warnings."""
    out: list[Finding] = []
    for taxonomy in spec.taxonomies.values():
        out.extend(_taxonomy(spec, taxonomy))
    for family in spec.models.values():
        out.extend(_model_family(spec, family))
    for line in spec.lines.values():
        out.extend(_line(spec, line))
    out.extend(_devices(spec))
    out.extend(canary_limit(spec, spec.policy.max_canary_lines_per_site))
    out.extend(_mirrors(spec))
    out.extend(_floor_lines(spec))
    return out


def _floor_lines(spec: FleetSpec) -> Iterator[Finding]:
    """Per-line floors must name lines of the fleet (a typo would silently not apply)."""
    doc = spec.docs.get(id(spec.policy))
    for key in sorted(spec.policy.floors.lines):
        if key in spec.lines or doc is None:
            continue
        import difflib  # only for a typo: not on a valid fleet's path

        close = difflib.get_close_matches(key, list(spec.lines), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        yield doc.finding(("floors", "lines", key), f"unknown line {key!r}{hint}", key=True)


def _taxonomy(spec: FleetSpec, tax: Taxonomy) -> Iterator[Finding]:
    doc = spec.located(tax)
    for cls, count in Counter(tax.class_ids).items():
        if count > 1:
            index = tax.class_ids.index(cls, tax.class_ids.index(cls) + 1)
            yield doc.finding(("classes", index, "id"), f"class {cls!r} is listed twice")
    if tax.version == 1:
        if tax.migration:
            yield doc.finding(("migration",), "version 1 has no previous version to migrate from")
        return
    previous = spec.taxonomies.get(f"{tax.name}@{tax.version - 1}")
    if previous is None and spec.exists("Taxonomy", f"{tax.name}@{tax.version - 1}"):
        return  # the previous version's file is broken: its own errors say why
    if previous is None:
        yield doc.finding(
            ("version",), f"{tax.name}@{tax.version - 1} is missing: versions must be consecutive"
        )
        return
    _, problems = class_mapping(previous, tax)
    for problem in problems:
        yield doc.finding(("migration",), problem, code="migration")


def _model_family(spec: FleetSpec, family: ModelFamily) -> Iterator[Finding]:
    doc = spec.located(family)
    seen: set[int] = set()
    for i, mv in enumerate(family.versions):
        at: Path = ("versions", i)
        if mv.version in seen:
            yield doc.finding((*at, "version"), f"version {mv.version} is listed twice")
        seen.add(mv.version)
        taxonomy = spec.taxonomies.get(mv.taxonomy)
        if not spec.exists("Taxonomy", mv.taxonomy):
            yield doc.finding((*at, "taxonomy"), f"unknown taxonomy version {mv.taxonomy!r}")
        elif taxonomy is not None:
            yield from _classes(doc, at, mv, taxonomy)
        yield from _oci_artifact(spec, family, mv, (*at, "artifact"))
        channels = 1 if mv.input.color == "gray" else 3
        if (problem := input_shape_problem(mv)) is not None:
            yield doc.finding((*at, "input", "shape"), problem)
        norm = mv.input.normalize
        for name in ("mean", "std"):
            values = getattr(norm, name)
            if values is not None and len(values) not in (1, channels):
                yield doc.finding(
                    (*at, "input", "normalize", name),
                    f"{len(values)} values for {channels} channel(s)",
                )
        for key, evidence in mv.evaluation.items():
            if not spec.exists("Line", key):
                yield doc.finding(
                    (*at, "evaluation", key),
                    f"evidence for unknown line {key!r}",
                    key=True,
                    severity=Severity.WARNING,
                )
            if evidence.incumbent_model and spec.model_version(evidence.incumbent_model) is None:
                yield doc.finding(
                    (*at, "evaluation", key, "incumbent_model"),
                    f"unknown model {evidence.incumbent_model!r}",
                )


def input_shape_problem(mv: ModelVersion) -> str | None:
    """Why the input shape does not fit its colour and layout (one image, 1 or 3 channels where
    the layout puts them, 1 to MAX_INPUT_SIDE pixels a side), or None."""
    channels = 1 if mv.input.color == "gray" else 3
    sides = (mv.input.height, mv.input.width)
    if not all(1 <= side <= MAX_INPUT_SIDE for side in sides):
        return (
            f"height and width must be 1 to {MAX_INPUT_SIDE}, not {sides[0]} x {sides[1]} "
            "(larger frames: declare input.tiling)"
        )
    if mv.input.shape[0] == 1 and mv.input.channels == channels:
        return None
    form = "1, {0}, height, width" if mv.input.layout == "NCHW" else "1, height, width, {0}"
    return f"expected [{form.format(channels)}] for {mv.input.color} input" + (
        "" if mv.input.layout == "NCHW" else " (NHWC)"
    )


def _oci_artifact(
    spec: FleetSpec, family: ModelFamily, mv: ModelVersion, at: Path
) -> Iterator[Finding]:
    """An `oci://` artifact parses, and its digest is the artifact's sha256."""
    url = mv.artifact.url
    if not is_oci(url):
        return
    doc = spec.located(family)
    try:
        ref = parse_ref(url)
    except OciError as exc:
        yield doc.finding((*at, "url"), str(exc), code="artifact")
        return
    if ref.sha256 != mv.artifact.sha256:
        yield doc.finding(
            (*at, "sha256"),
            f"the url's digest sha256:{ref.sha256[:12]}... is not this sha256 "
            f"{mv.artifact.sha256[:12]}...: a registry blob is addressed by its own hash",
            code="artifact",
        )


def _mirrors(spec: FleetSpec) -> Iterator[Finding]:
    """A site mirror caches one registry: the catalogue's `oci://` models must share it."""
    hosts = sorted(
        {
            parse_ref(v.artifact.url).host
            for family in spec.models.values()
            for v in family.versions
            if REF_PATTERN.match(v.artifact.url)
        }
    )
    if len(hosts) < 2:
        return
    for site in spec.sites.values():
        if site.artifact_mirror:
            yield spec.located(site).finding(
                ("artifact_mirror",),
                f"a site mirror caches one registry, but the model catalogue names "
                f"{len(hosts)} ({', '.join(hosts)})",
                code="artifact",
            )


def _classes(doc: Any, at: Path, mv: ModelVersion, taxonomy: Taxonomy) -> Iterator[Finding]:
    """Classification: the taxonomy's classes in order; detection: taxonomy classes other than
    `ok`; anomaly: `ok` and one taxonomy class."""
    ids = taxonomy.class_ids
    if mv.task == "classification":
        if mv.output_classes != ids:
            yield doc.finding(
                (*at, "output_classes"),
                f"must be the classes of {mv.taxonomy} in order: {ids}",
                code="taxonomy_mismatch",
            )
        return
    unknown = [c for c in mv.output_classes if c not in ids]
    if unknown:
        yield doc.finding(
            (*at, "output_classes"),
            f"{', '.join(unknown)} not in {mv.taxonomy} ({ids})",
            code="taxonomy_mismatch",
        )


def _line(spec: FleetSpec, line: Line) -> Iterator[Finding]:
    doc = spec.located(line)
    if not spec.exists("Site", line.site):
        yield doc.finding(("site",), f"unknown site {line.site!r}", code="reference")
    if not spec.exists("Taxonomy", line.taxonomy):
        yield doc.finding(
            ("taxonomy",), f"unknown taxonomy version {line.taxonomy!r}", code="reference"
        )
    ids = [c.id for c in line.cameras]
    for i, cam in enumerate(ids):
        if ids.index(cam) != i:
            yield doc.finding(("cameras", i, "id"), f"camera {cam!r} is listed twice")
    rollout = line.rollout
    refs: list[tuple[Path, str]] = [(("rollout", "serving"), rollout.serving)]
    if rollout.candidate:
        refs.append((("rollout", "candidate", "model"), rollout.candidate.model))
        if rollout.candidate.model == rollout.serving:
            yield doc.finding(
                ("rollout", "candidate", "model"), "the candidate is the serving model already"
            )
    if rollout.previous:
        refs.append((("rollout", "previous"), rollout.previous))
    if rollout.novelty:
        yield from _novelty(spec, line)
    yield from _telemetry(spec, line)
    for path, ref in refs:
        mv = spec.model_version(ref)
        family = ref.partition("@")[0]
        if mv is None:
            if family in spec.models or not spec.exists("Model", family):
                yield doc.finding(
                    path, f"unknown model {ref!r} (not in the model catalogue)", code="reference"
                )
            continue
        if mv.taxonomy not in spec.taxonomies:
            continue  # the model's taxonomy is broken or unknown: reported on the model
        if path[-1] == "serving" and mv.taxonomy != line.taxonomy:
            yield doc.finding(
                ("taxonomy",),
                f"the line uses {line.taxonomy} but its serving model {ref} outputs {mv.taxonomy}",
                code="taxonomy_mismatch",
            )
        if path[1] == "candidate" and not _same_or_later(mv.taxonomy, line.taxonomy):
            yield doc.finding(
                path,
                f"candidate {ref} outputs {mv.taxonomy}; the line uses {line.taxonomy} "
                "(a candidate may move the line to a later version of its taxonomy, not another)",
                code="taxonomy_mismatch",
            )
        yield from _tiles(doc, path, ref, mv, line)
        for i, camera in enumerate(line.cameras):
            height, width = mv.input.height, mv.input.width
            if mv.input.tiling is not None:
                continue  # tiles are resized to the input, whatever the frame's size
            if camera.resolution.width < width or camera.resolution.height < height:
                res = camera.resolution
                yield doc.finding(
                    ("cameras", i, "resolution"),
                    f"{res.width}x{res.height} is smaller than the input {width}x{height} of {ref}",
                    code="capability",
                )


def _telemetry(spec: FleetSpec, line: Line) -> Iterator[Finding]:
    """Keep rules that are valid but cannot do what they are set for (warnings)."""
    policy = line.rollout.telemetry
    doc = spec.located(line)
    at: Path = ("rollout", "telemetry")
    if policy.uncertain_at >= 1.0:
        field = "uncertain_below" if policy.uncertain_below is not None else "uncertainty_band"
        audit = (
            "; the audit sample (audit_rate) never gets a frame, so the line has no field "
            "escape estimate"
            if policy.audit_rate
            else ""
        )
        yield doc.finding(
            (*at, field),
            "a top confidence is at most 1, so every decided frame is kept as uncertain and "
            f"uploaded within the budgets{audit}",
            severity=Severity.WARNING,
        )
    if policy.doubt_defects_below is not None and line.rollout.novelty is None:
        yield doc.finding(
            (*at, "doubt_defects_below"),
            "has no effect without a novelty model on the line (rollout.novelty): every "
            "defect call is kept",
            severity=Severity.WARNING,
        )


def _novelty(spec: FleetSpec, line: Line) -> Iterator[Finding]:
    """The novelty model must be in the catalogue and be an anomaly model (a score per frame)."""
    novelty = line.rollout.novelty
    if novelty is None:
        return
    doc = spec.located(line)
    mv = spec.model_version(novelty.ref)
    if mv is None:
        if novelty.model in spec.models or not spec.exists("Model", novelty.model):
            yield doc.finding(
                ("rollout", "novelty"),
                f"unknown model {novelty.ref!r} (not in the model catalogue)",
                code="reference",
            )
        return
    if mv.task != "anomaly":
        yield doc.finding(
            ("rollout", "novelty", "model"),
            f"{novelty.ref} is a {mv.task} model; a novelty model has task 'anomaly'",
        )
    yield from _tiles(doc, ("rollout", "novelty"), novelty.ref, mv, line)


def _tiles(
    doc: yamlsafe.Located, path: Path, ref: str, mv: ModelVersion, line: Line
) -> Iterator[Finding]:
    """A tiling that cuts a camera's frame (its ROI, else its resolution: what the models see)
    into more tiles than a device decides in reasonable time (`MAX_TILES_PER_FRAME`)."""
    tiling = mv.input.tiling
    if tiling is None:
        return
    for camera in line.cameras:
        seen = camera.roi or camera.resolution
        many = too_many_tiles(seen.width, seen.height, tiling.size, tiling.overlap)
        if many is not None:
            yield doc.finding(path, f"{ref} on camera {camera.id}: {many}", code="capability")


def _same_or_later(model_taxonomy: str, line_taxonomy: str) -> bool:
    m_name, _, m_ver = model_taxonomy.partition("@")
    l_name, _, l_ver = line_taxonomy.partition("@")
    return m_name == l_name and int(m_ver) >= int(l_ver)


def _devices(spec: FleetSpec) -> Iterator[Finding]:
    served_by: dict[tuple[str, str], str] = {}
    for device in spec.devices.values():
        yield from _device(spec, device, served_by)
    if any(b.startswith("EdgeDevice:") for b in spec.broken):
        return  # a device file is broken: which cameras it serves is unknown
    for line in spec.lines.values():
        missing = [c.id for c in line.cameras if (line.key, c.id) not in served_by]
        if missing:
            yield spec.located(line).finding(
                ("cameras",),
                f"no edge device serves camera(s) {', '.join(missing)}",
                severity=Severity.WARNING,
                code="unserved",
            )


def _device(
    spec: FleetSpec, device: EdgeDevice, served_by: dict[tuple[str, str], str]
) -> Iterator[Finding]:
    doc = spec.located(device)
    if not spec.exists("Site", device.site):
        yield doc.finding(("site",), f"unknown site {device.site!r}", code="reference")
    for i, serves in enumerate(device.serves):
        key = f"{device.site}/{serves.line}"
        line = spec.lines.get(key)
        if line is None:
            if not spec.exists("Line", key):
                yield doc.finding(("serves", i, "line"), f"unknown line {key!r}", code="reference")
            continue
        cams = {c.id for c in line.cameras}
        for j, cam in enumerate(serves.cameras):
            where: Path = ("serves", i, "cameras", j)
            if cam not in cams:
                yield doc.finding(where, f"line {key} has no camera {cam!r}", code="reference")
            elif (key, cam) in served_by and served_by[(key, cam)] != device.id:
                yield doc.finding(
                    where, f"camera {key}/{cam} is already served by {served_by[(key, cam)]}"
                )
            else:
                served_by[(key, cam)] = device.id
        yield from _capability(spec, device, line, ("serves", i, "line"))


def _capability(spec: FleetSpec, device: EdgeDevice, line: Line, at: Path) -> Iterator[Finding]:
    rollout = line.rollout
    refs = [
        rollout.serving,
        rollout.previous,
        rollout.candidate.model if rollout.candidate else None,
        rollout.novelty.ref if rollout.novelty else None,
    ]
    offered = device.onnx.execution_providers
    for ref in refs:
        mv: ModelVersion | None = spec.model_version(ref) if ref else None
        if mv is None:
            continue
        if mv.opset > device.onnx.max_opset:
            yield spec.located(device).finding(
                ("onnx", "max_opset"),
                f"{ref} (for {line.key}) needs opset {mv.opset}; this device supports up to "
                f"{device.onnx.max_opset}",
                code="capability",
            )
        if set(mv.execution_providers).isdisjoint(offered):
            yield spec.located(device).finding(
                ("onnx", "execution_providers"),
                f"{ref} (for {line.key}) runs on {mv.execution_providers}; the device offers "
                f"{device.onnx.execution_providers}",
                code="capability",
            )


def canary_limit(spec: FleetSpec, limit: int, sites: set[str] | None = None) -> list[Finding]:
    """Every line of a site (of `sites`, default all) with more than `limit` lines in canary."""
    return list(_canary_limit(spec, limit, sites))


def in_canary(spec: FleetSpec) -> dict[str, list[Line]]:
    """The lines in canary, by site."""
    out: dict[str, list[Line]] = defaultdict(list)
    for line in spec.lines.values():
        if line.rollout.candidate and line.rollout.candidate.stage == "canary":
            out[line.site].append(line)
    return out


def _canary_limit(spec: FleetSpec, limit: int, sites: set[str] | None) -> Iterator[Finding]:
    for site, lines in sorted(in_canary(spec).items()):
        if sites is not None and site not in sites:
            continue
        if len(lines) > limit:
            names = ", ".join(sorted(line.key for line in lines))
            for line in lines:
                yield spec.located(line).finding(
                    ("rollout", "candidate", "stage"),
                    f"site {site} has {len(lines)} lines in canary ({names}); the policy allows "
                    f"{limit}",
                    code="policy",
                )


REPO_ARTIFACT_WARN_BYTES = 10 * 1024 * 1024
"""Above this, a model file kept in the fleet repository is a warning: every clone carries every
version of it forever; a registry (`linefleet artifacts push`) keeps git to YAML."""


def artifacts(spec: FleetSpec, source: object, *, fetch: bool = False) -> list[Finding]:
    """Every catalogue artifact missing or different from what the catalogue declares.

    Repository files are read from `source` (when it can hand them out: a working tree or a
    commit); remote ones are fetched only with `fetch` (`validate --check-artifacts`).
    """
    files = source if isinstance(source, artifactref.ArtifactFiles) else None
    declared = []
    big: list[Finding] = []
    for family in spec.models.values():
        doc = spec.located(family)
        for i, mv in enumerate(family.versions):
            at: Path = ("versions", i, "artifact")

            def finding(
                field: str, message: str, at: Path = at, doc: yamlsafe.Located = doc
            ) -> Finding:
                return doc.finding((*at, field), message, code="artifact")

            art = mv.artifact
            declared.append(artifactref.Declared(art.url, art.sha256, art.size, finding))
            if art.size > REPO_ARTIFACT_WARN_BYTES and _in_repo(art.url):
                big.append(
                    doc.finding(
                        (*at, "size"),
                        f"{art.size / 2**20:.0f} MiB model file in the fleet repository "
                        f"(over {REPO_ARTIFACT_WARN_BYTES // 2**20} MiB): every clone carries "
                        "it forever; push it to a registry with `linefleet artifacts push` and "
                        "name it by digest",
                        severity=Severity.WARNING,
                        code="artifact_size",
                    )
                )
    return [*artifactref.check(declared, files, fetch=fetch), *big]


def _in_repo(url: str) -> bool:
    try:
        return isinstance(artifactref.parse(url), artifactref.InRepo)
    except ValueError:
        return False
