"""Score any contract-following ONNX model on dataset items, overall and per line.

The candidate and a line's incumbent are scored the same way, on the same holdout frames:
each model gets the preprocessing its catalogue entry declares (input size, colour). A
prediction is compared by class name; an incumbent on an older taxonomy version has its
predictions carried forward through the automatic moves (same, renamed, merged), and a
class with no automatic move counts as wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from linefleet_core.errors import PermanentError
from linefleet_core.modelio import Contract, decide, prepare, run_session
from linefleet_core.taxonomy import Taxonomy, class_mapping
from trainer.datasets import Item
from trainer.features import to_tensor
from trainer.frames import FrameStore
from trainer.metrics import Scores, score
from trainer.train import predict_with, session_for


@dataclass(frozen=True)
class ModelUnderTest:
    onnx: bytes
    height: int
    width: int
    color: str
    output_classes: tuple[str, ...]
    taxonomy: str
    contract: Contract | None = None
    """Model contract v2 (preprocessing and task as the catalogue declares); None: v1."""


def carry_forward(
    cls: str, taxonomy: str, target: str, taxonomies: Mapping[str, Taxonomy]
) -> str | None:
    """`cls` of `taxonomy` expressed in `target` (same name, later version), or None."""
    name, _, start = taxonomy.partition("@")
    t_name, _, end = target.partition("@")
    if name != t_name or not start.isdigit() or not end.isdigit():
        return cls if taxonomy == target else None
    current: str | None = cls
    for v in range(int(start), int(end)):
        old, new = taxonomies.get(f"{name}@{v}"), taxonomies.get(f"{name}@{v + 1}")
        if old is None or new is None or current is None:
            return None
        moves, _ = class_mapping(old, new)
        move = moves.get(current)
        current = move.targets[0] if move and not move.needs_review else None
    return current


def evaluate(
    model: ModelUnderTest,
    items: Sequence[Item],
    frames: FrameStore,
    classes: Sequence[str],
    taxonomy: str,
    taxonomies: Mapping[str, Taxonomy],
) -> tuple[Scores, dict[str, Scores]]:
    try:
        session = session_for(model.onnx)
    except Exception as exc:
        raise PermanentError(f"model on {model.taxonomy} does not load: {exc}") from None
    mapped = [carry_forward(c, model.taxonomy, taxonomy, taxonomies) for c in model.output_classes]
    index = [list(classes).index(c) if c is not None and c in classes else -1 for c in mapped]
    truth: list[int] = []
    predicted: list[int] = []
    by_line: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    by_label: dict[str, int] = {}

    def index_of(label: str) -> int:
        if label not in by_label:
            moved = carry_forward(label, model.taxonomy, taxonomy, taxonomies)
            by_label[label] = list(classes).index(moved) if moved and moved in classes else -1
        return by_label[label]

    for item in items:
        image = frames.load(item.frame)
        if model.contract is not None:
            batch, places = prepare(image, model.contract)
            verdict = decide(model.contract, run_session(session, model.contract, batch), places)
            p = index_of(verdict.label)
        else:
            x = to_tensor(image, model.height, model.width, model.color)
            p = index[int(np.argmax(predict_with(session, x)[0]))]
        t = list(classes).index(item.cls)
        truth.append(t)
        predicted.append(p)
        by_line[item.line_key][0].append(t)
        by_line[item.line_key][1].append(p)
    return _score(truth, predicted, classes), {
        k: _score(t, p, classes) for k, (t, p) in sorted(by_line.items())
    }


def _score(truth: list[int], predicted: list[int], classes: Sequence[str]) -> Scores:
    """Like `score`, with "no class of the target taxonomy" (-1) counted as a wrong answer."""
    k = len(classes)
    wrong = [(p if p >= 0 else (t + 1) % k) for t, p in zip(truth, predicted, strict=True)]
    return score(truth, wrong, classes)
