"""The `surface-defects` taxonomy, versions 1 to 3, as fleet documents.

v1 -> v2: `contamination` was too broad (dust blows off, oil needs a wash station), so it
          is split into `dust` and `oil`; old labels need a human decision.
v2 -> v3: `discoloration` is renamed `stain` (the word the paint shop uses) and `crack`
          is added: cracks were labelled `dent` before, which hid a critical defect.
"""

from __future__ import annotations

from typing import Any

TAXONOMY_NAME = "surface-defects"

_DEFINITIONS = {
    "ok": ("none", "No visible defect: the surface meets the cosmetic specification."),
    "scratch": (
        "minor",
        "A thin linear mark in the coating or metal, longer than 2 mm, that catches light "
        "at a low angle.",
    ),
    "dent": (
        "major",
        "A local depression or bump in the panel surface, visible as a distorted "
        "reflection, deeper than 0.1 mm.",
    ),
    "contamination": (
        "minor",
        "Foreign material on the surface (dust, fibres, oil or sealer residue).",
    ),
    "dust": (
        "minor",
        "Dry particles or fibres resting on or trapped in the coating; removable by "
        "blow-off before paint, a rework spot after.",
    ),
    "oil": (
        "major",
        "Oil, drawing compound or sealer residue: a glossy film or droplets that break "
        "paint adhesion and need a wash.",
    ),
    "discoloration": (
        "minor",
        "A region whose colour or gloss differs from the surrounding surface (water "
        "spots, overspray, heat tint).",
    ),
    "stain": (
        "minor",
        "A region whose colour or gloss differs from the surrounding surface (water "
        "spots, overspray, heat tint).",
    ),
    "crack": (
        "critical",
        "A fracture through the material, often at a draw radius or a hole edge; the part "
        "must be scrapped.",
    ),
}

_VERSIONS: dict[int, tuple[list[str], list[dict[str, Any]], str]] = {
    1: (
        ["ok", "scratch", "dent", "contamination", "discoloration"],
        [],
        "Cosmetic surface defects on stamped and painted body panels.",
    ),
    2: (
        ["ok", "scratch", "dent", "dust", "oil", "discoloration"],
        [{"split": "contamination", "into": ["dust", "oil"]}],
        "Splits contamination by its remedy: dust (blow-off) and oil (wash).",
    ),
    3: (
        ["ok", "scratch", "dent", "dust", "oil", "stain", "crack"],
        [{"rename": "discoloration", "to": "stain"}, {"add": "crack"}],
        "Renames discoloration to stain and adds crack, a critical defect.",
    ),
}


def taxonomy_documents() -> dict[int, dict[str, Any]]:
    """Version number -> the Taxonomy document (classes in model-output order)."""
    docs: dict[int, dict[str, Any]] = {}
    for version, (classes, migration, description) in _VERSIONS.items():
        doc: dict[str, Any] = {
            "apiVersion": "linefleet.io/v1",
            "kind": "Taxonomy",
            "name": TAXONOMY_NAME,
            "version": version,
            "description": description,
            "classes": [
                {"id": c, "definition": _DEFINITIONS[c][1], "severity": _DEFINITIONS[c][0]}
                for c in classes
            ],
        }
        if migration:
            doc["migration"] = migration
        docs[version] = doc
    return docs
