"""Import labelled images from folder trees: one folder per class, and the MVTec AD layout.

    import_folder(root, store, frames, levels=("line", "class"), fixed={"site": "toledo",
                  "camera": "cam-1"}, annotator="ana", taxonomy="surface-defects@3")
    import_mvtec(root / "metal_nut", store, frames, fixed={...}, class_map={"good": "ok",
                 "scratch": "scratch", "bent": "dent", "color": "particle"}, ...)

Folder trees: `ROOT/<level>/.../<class>/*.png`, where `levels` names each sub-folder level
(`class` last; `site`, `line`, `camera` anywhere before it, or given as fixed values). MVTec
AD: `CATEGORY/train/good/*.png` and `CATEGORY/test/<defect type>/*.png` (`ground_truth/` masks
are not labels and are skipped); `good` is `ok`, a defect type is a class of the same name
unless `class_map` maps it.

Everything is checked before anything is written, and every problem is located at the folder
it comes from (`ROOT/toledo/lnie-1: line: unknown line 'toledo/lnie-1'; did you mean
'line-1'?`), once per folder. Then the same writer as JSON Lines stores frames and events.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from linefleet_core.errors import Finding, FindingsError, UsageError
from linefleet_core.taxonomy import Taxonomy
from trainer.checks import check_class
from trainer.frames import FrameStore
from trainer.imports import AnnotationLine, ImportResult, Located, stage, write_staged
from trainer.places import Places
from trainer.store import LabelStore

IMAGES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})  # as the edge
PLACE = ("site", "line", "camera")
DEFAULT_MAP = {"good": "ok"}


def _images(folder: Path) -> list[Path]:
    """Every file named as an image under `folder`: a link whose target is gone (or a pipe)
    is one too, refused by name when it is read, not left out without a word."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGES and not p.is_dir())


def _row(
    image: Path, values: Mapping[str, str], annotator: str | None, taxonomy: str | None
) -> AnnotationLine | str:
    try:
        return AnnotationLine.model_validate(
            {
                "image": str(image),
                "site": values["site"],
                "line": values["line"],
                "camera": values["camera"],
                "class": values["class"],
                "annotator": annotator,
                "taxonomy": taxonomy,
            }
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def _quoted(folder: str) -> str:
    """`FOLDER=CLASS` as the shell needs it (a folder name with a space is quoted)."""
    return shlex.quote(f"{folder}=CLASS")


def class_of(
    folder: str,
    class_map: Mapping[str, str],
    taxonomies: Mapping[str, Taxonomy],
    taxonomy: str | None,
) -> str:
    """The class a class folder holds: `--map` first, then the folder's name; a name that is
    no class as written is matched without case, with spaces and underscores as hyphens
    (`Scratch`, `DENT`, `oil_film`), and `good` is `ok` (as in MVTec AD)."""
    if folder in class_map:
        return class_map[folder]
    if not check_class(taxonomies, taxonomy, folder):
        return folder
    plain = "-".join(folder.strip().lower().replace("_", " ").split())
    plain = class_map.get(plain, DEFAULT_MAP.get(plain, plain))
    return plain if not check_class(taxonomies, taxonomy, plain) else folder


def _check_levels(levels: Sequence[str], fixed: Mapping[str, str]) -> None:
    known = {*PLACE, "class"}
    unknown = [name for name in levels if name not in known]
    if unknown:
        raise UsageError(f"--levels: unknown level {unknown[0]!r} (use site, line, camera, class)")
    if not levels or levels[-1] != "class" or len(set(levels)) != len(levels):
        raise UsageError("--levels: each level at most once, `class` last (e.g. site/line/class)")
    for name in PLACE:
        if name not in levels and not fixed.get(name):
            raise UsageError(f"give --{name}, or a `{name}` level in --levels")
        if name in levels and fixed.get(name):
            raise UsageError(f"--{name} and a `{name}` level in --levels: give one")


def folder_rows(
    root: Path,
    levels: Sequence[str],
    fixed: Mapping[str, str],
    class_map: Mapping[str, str],
    annotator: str | None,
    taxonomy: str | None,
    places: Places | None,
    taxonomies: Mapping[str, Taxonomy],
    findings: list[Finding],
) -> list[tuple[Located, AnnotationLine]]:
    """One row per image; problems of a folder (place, class, depth) as one finding each."""
    rows: list[tuple[Located, AnnotationLine]] = []
    seen: set[Finding] = set()

    def add(where: Path, field: str, message: str) -> None:
        finding = Finding(str(where), 0, 0, field, message)
        if finding not in seen:
            seen.add(finding)
            findings.append(finding)

    for image in _images(root):
        parts = image.relative_to(root).parts[:-1]
        if len(parts) != len(levels):
            expected = "/".join(f"<{name}>" for name in levels)
            add(root.joinpath(*parts), "", f"images belong at {root}/{expected}/*.png")
            continue
        folder = dict(
            zip(levels, (root.joinpath(*parts[: i + 1]) for i in range(len(parts))), strict=True)
        )
        values = {**fixed, **dict(zip(levels, parts, strict=True))}
        values["class"] = class_of(values["class"], class_map, taxonomies, taxonomy)
        bad = places.check(values["site"], values["line"], values["camera"]) if places else []
        for field, message in bad:
            add(folder.get(field, root), field, message)
        if problem := check_class(taxonomies, taxonomy, values["class"]):
            hint = "" if parts[-1] in class_map else f"; map it with --map {_quoted(parts[-1])}"
            add(folder["class"], "class", problem + hint)
            continue
        if bad:
            continue
        row = _row(image, values, annotator, taxonomy)
        if isinstance(row, str):
            add(folder["class"], "", row)
            continue
        rows.append((Located(str(folder["class"]), 0, 0), row))
    return rows


def import_folder(
    root: Path,
    store: LabelStore,
    frames: FrameStore,
    *,
    levels: Sequence[str] = ("class",),
    fixed: Mapping[str, str] | None = None,
    class_map: Mapping[str, str] | None = None,
    annotator: str | None = None,
    taxonomy: str | None = None,
    places: Places | None = None,
) -> ImportResult:
    fixed = {k: v for k, v in (fixed or {}).items() if v}
    _check_levels(levels, fixed)
    _need(annotator, taxonomy)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    findings: list[Finding] = []
    rows = folder_rows(
        root, levels, fixed, class_map or {}, annotator, taxonomy, places, store.taxonomies,
        findings,
    )  # fmt: skip
    return _finish(root, rows, findings, store, frames, places)


def import_mvtec(
    category: Path,
    store: LabelStore,
    frames: FrameStore,
    *,
    fixed: Mapping[str, str],
    class_map: Mapping[str, str] | None = None,
    annotator: str | None = None,
    taxonomy: str | None = None,
    places: Places | None = None,
) -> ImportResult:
    """One MVTec AD category folder (with `train/` and `test/`) onto one line and camera."""
    if not (category / "train").is_dir() or not (category / "test").is_dir():
        raise UsageError(
            f"{category}: not an MVTec AD category (expected train/ and test/ folders; give "
            "the category folder, e.g. mvtec/metal_nut)"
        )
    fixed = {k: v for k, v in fixed.items() if v}
    _check_levels(("class",), fixed)
    _need(annotator, taxonomy)
    mapping = {**DEFAULT_MAP, **(class_map or {})}
    findings: list[Finding] = []
    rows = []
    for split in ("train", "test"):
        rows += folder_rows(
            category / split, ("class",), fixed, mapping, annotator, taxonomy, places,
            store.taxonomies, findings,
        )  # fmt: skip
    return _finish(category, rows, findings, store, frames, places)


def _need(annotator: str | None, taxonomy: str | None) -> None:
    if not annotator:
        raise UsageError("give --annotator (folder trees carry no annotator)")
    if not taxonomy:
        raise UsageError("give --taxonomy (e.g. surface-defects@3)")


def _finish(
    root: Path,
    rows: list[tuple[Located, AnnotationLine]],
    findings: list[Finding],
    store: LabelStore,
    frames: FrameStore,
    places: Places | None,
) -> ImportResult:
    if not rows and not findings:
        raise UsageError(f"{root}: no images (*.png, *.jpg, *.bmp, *.tif, *.webp) under it")
    staged = stage(rows, Path(), store, frames, places, findings)  # rows name root/... already
    if findings:
        raise FindingsError(findings)
    return write_staged(staged, store, frames, str(root))
