"""Anomaly-native logging: keep the frames worth a human's look, within budgets.

Keep rules (`keep_reason`; docs/edge.md, "Anomaly-native logging"), first match wins:
`defect` (the deciding model's class is not `ok`, with `keep_defects`; with
`doubt_defects_below`, not when the line's novelty model finds the frame normal: `doubted`,
counted, and left to the other rules), `novel` (the frame's
input-novelty score, `edge_puller/novelty.py`, says it is far from normal for its camera:
independent of the classifier), `uncertain` (top confidence at or below the policy's
`uncertain_at`: no lower edge), `disagreement` (the shadow/canary candidate decided another
class, with `keep_disagreements`), `audit` (a stratified random sample of the remaining
confidently-`ok` frames, `audit_rate` per camera: labelled, they estimate the escape rate).
Every other frame is only counted.

Kept frames are JPEG-encoded into the wire's frame envelope (with the reason and the novelty
score) and written to a bounded on-disk spool, one file per frame named
`<seq>-<reason>-<score>.lff` (`keep_score`: how informative the frame is within its reason).
When a budget binds, the most informative frames win: first by reason (`PRIORITY`: defect,
novel, uncertain, disagreement, audit), then by score, oldest first among equals. A full spool
(`spool_mb`) evicts the least informative frames first and refuses a new frame only when
everything left is more informative; `next_upload` hands out the most informative frame
first while the day's upload (`daily_upload_budget_mb`, UTC days) allows it, and `uploaded`
deletes it after the broker's PUBACK. `counters.json` keeps per reason what was kept,
uploaded and dropped (evicted or refused), and per camera the audit population.

A line the device no longer serves keeps its spool until it is drained: it is marked retired
(`retired_at` in `counters.json`, so a restart remembers), keeps uploading within its budget,
and is deleted once empty, or after a grace period with what is left counted (`delete`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
from pydantic import TypeAdapter, ValidationError

from edge_puller.engine import Decision
from edge_puller.novelty import FRAME_STATS, Novelty, NoveltyScorer
from edge_puller.runtime import Frame, LoadedModel
from edge_puller.target import Roi
from linefleet_core.atomic import clean_temps, write_atomic
from linefleet_core.wire import DetectedBox, FrameMeta, TelemetrySpec, encode_frame

MB = 1024 * 1024
Reason = Literal["defect", "novel", "uncertain", "disagreement", "audit"]
FrameReason = Literal["defect", "novel", "uncertain", "disagreement", "audit", "sample"]
PRIORITY: tuple[Reason, ...] = ("defect", "novel", "uncertain", "disagreement", "audit")
"""Most informative first: the order of uploads, and the reverse order of evictions."""
SUFFIX = ".lff"
SPOOLED = re.compile(r"(\d{1,18})(?:-[a-z]+(?:-[0-9.]+)?)?\.lff")
"""A spooled file's name (`<seq>-<reason>-<score>.lff`, or an older agent's `<seq>.lff`)."""

log = logging.getLogger(__name__)


def doubted(decision: Decision, policy: TelemetrySpec, novelty: Novelty | None) -> bool:
    """A `defect` call the line's novelty model finds as normal as most `ok` frames (score
    below `doubt_defects_below` x its threshold): not kept as `defect` (counted as `doubted`).
    Never with the policy unset, nor on frame statistics (too coarse to judge a small defect)."""
    return (
        policy.doubt_defects_below is not None
        and decision.label not in (None, "ok")
        and novelty is not None
        and novelty.by != FRAME_STATS
        and novelty.ratio < policy.doubt_defects_below
    )


def keep_reason(
    decision: Decision, policy: TelemetrySpec, novelty: Novelty | None = None
) -> Reason | None:
    """Why this frame is worth keeping, before the audit sample (`AuditSampler`), or None."""
    if decision.label is None:
        return None
    if policy.keep_defects and decision.label != "ok" and not doubted(decision, policy, novelty):
        return "defect"
    if novelty is not None and novelty.novel:
        return "novel"
    if decision.confidence <= policy.uncertain_at:
        return "uncertain"
    if (
        policy.keep_disagreements
        and decision.candidate is not None
        and decision.serving is not None
        and decision.candidate.label != decision.serving.label
    ):
        return "disagreement"
    return None


def keep_score(
    reason: Reason, decision: Decision, novelty: Novelty | None, rng: random.Random
) -> float:
    """How informative a kept frame is within its reason (higher: kept and uploaded first).

    - `defect`: the deciding model's confidence in its defect class (the surest defects first:
      a call made only because the operating point leans to `defect` goes before one the model
      is sure of);
    - `novel`: the novelty score over its threshold (the farthest from normal first);
    - `uncertain`, `disagreement`: the deciding model's doubt, 1 - its top confidence;
    - `audit`: a uniform random draw, so whatever a full spool leaves of the sample is still a
      random sample of the same population (the escape estimate stays unbiased).
    """
    if reason == "defect":
        return decision.confidence
    if reason == "novel":
        return novelty.ratio if novelty is not None else 0.0
    if reason in ("uncertain", "disagreement"):
        return 1.0 - decision.confidence
    return rng.random()


class AuditSampler:
    """Stratified random sampling of confidently-`ok` frames, per camera: of every block of
    round(1 / rate) such frames of a camera, one at a random place in the block."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._blocks: dict[str, tuple[int, int, int]] = {}  # camera -> (size, position, pick)

    def take(self, camera: str, rate: float) -> bool:
        if rate <= 0:
            return False
        try:
            size = max(1, round(1 / rate))
        except OverflowError:  # a rate so small (under ~1e-308) that 1 / rate is infinite
            return False  # samples less than one frame in any device's lifetime: none
        block, position, pick = self._blocks.get(camera, (0, size, 0))
        if block != size or position >= size:  # a new block (or the rate changed)
            block, position, pick = size, 0, self._rng.randrange(size)
        self._blocks[camera] = (block, position + 1, pick)
        return position == pick


def envelope(
    decision: Decision,
    frame: Frame,
    site: str,
    device: str,
    captured_at: dt.datetime,
    reason: FrameReason,
    jpeg_quality: int = 90,
    novelty: Novelty | None = None,
) -> bytes | None:
    """The frame as the wire's `LFF1` envelope (JPEG plus metadata), or None if not decided."""
    if decision.serving is None or decision.label is None:
        return None
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        return None
    jpeg = encoded.tobytes()
    candidate = decision.candidate
    chosen = candidate if decision.decided_by == "candidate" and candidate else decision.serving
    meta = FrameMeta(
        protocol=1,
        kind="Frame",
        site=site,
        device=device,
        line=decision.line,
        camera=decision.camera,
        frame_id=decision.frame_id[:128],
        captured_at=captured_at,
        reason=reason,
        model=decision.model or decision.serving.model,
        predicted=decision.label,
        confidence=min(1.0, max(0.0, decision.confidence)),
        candidate=candidate.model if candidate else None,
        candidate_predicted=candidate.label if candidate else None,
        boxes=[DetectedBox.model_validate(b.to_json()) for b in chosen.boxes] or None,
        score=chosen.score,
        novelty=None if novelty is None else round(novelty.score, 6),
        novelty_by=None if novelty is None else novelty.by,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        size=len(jpeg),
    )
    return encode_frame(meta, jpeg)


def reason_of(path: Path) -> str:
    """The reason in a spooled file's name (`<seq>-<reason>[-<score>].lff`); `legacy` for
    `<seq>.lff`."""
    parts = path.stem.split("-")
    return parts[1] if len(parts) > 1 and parts[1] else "legacy"


def score_of(path: Path) -> float:
    """The within-reason score in a spooled file's name; 0 for names written without one."""
    parts = path.stem.split("-")
    try:
        return float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        return 0.0


def spooled_files(folder: Path) -> list[Path]:
    """The spool's own frame files in `folder`, by name: regular files named as the spool names
    them. Anything else (a folder or a dangling link named `*.lff`, a file someone put there)
    is neither counted nor uploaded."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if SPOOLED.fullmatch(p.name) and p.is_file()]


def seq_of(path: Path) -> int:
    return int(path.name.split("-")[0].removesuffix(SUFFIX))


def file_name(seq: int, reason: str, score: float) -> str:
    """`<seq>-<reason>-<score>.lff`: the score clamped to [0, 1e6], fixed-point (no sign)."""
    score = min(max(score, 0.0), 1e6) if score == score else 0.0  # NaN -> 0
    return f"{seq:012d}-{reason}-{score:.6f}{SUFFIX}"


_RANKS: dict[str, int] = {reason: rank for rank, reason in enumerate(PRIORITY)}


def _rank(reason: str) -> int:
    """0 = most informative; a spool written before reasons were named drains first."""
    return _RANKS.get(reason, 0)


def informative(path: Path) -> tuple[int, float, str]:
    """The order of a spooled file: smaller is more informative (reason, then score, then the
    older first: the names sort by sequence)."""
    return _rank(reason_of(path)), -score_of(path), path.name


@dataclass
class ReasonCounters:
    kept: int = 0
    """Frames the keep rules chose, spooled or not: kept = uploaded + dropped + still spooled."""
    kept_bytes: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    dropped: int = 0
    """Evicted from a full spool, or refused because everything spooled was more informative."""
    dropped_bytes: int = 0


@dataclass
class SpoolCounters:
    seq: int = 0
    seen: int = 0
    kept: int = 0
    evicted: int = 0
    evicted_bytes: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    day: str = ""
    bytes_today: int = 0
    retired_at: float | None = None
    """Unix time the line stopped being served (its frames still upload); None while served."""
    reasons: dict[str, ReasonCounters] = field(default_factory=dict)
    """Per keep reason: frames and bytes kept, uploaded and dropped."""
    audit: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per camera: `population` (confidently-`ok` frames, the audit's population) and `sampled`."""
    doubted: int = 0
    """`defect` calls the novelty model found normal (`doubt_defects_below`) that no other rule
    kept: seen and counted, not spooled."""

    def reason(self, name: str) -> ReasonCounters:
        return self.reasons.setdefault(name, ReasonCounters())

    def dropped(self, reason: str, size: int) -> None:
        self.evicted += 1
        self.evicted_bytes += size
        counters = self.reason(reason)
        counters.dropped += 1
        counters.dropped_bytes += size


class Spool:
    def __init__(self, folder: Path, policy: TelemetrySpec, jpeg_quality: int = 90) -> None:
        self.folder = folder
        self.policy = policy
        self.jpeg_quality = jpeg_quality
        self.novelty = NoveltyScorer()
        self.sampler = AuditSampler()
        self.draws = random.Random()
        """The audit frames' scores (a random order among them)."""
        folder.mkdir(parents=True, exist_ok=True)
        clean_temps(folder)
        self._counters_path = folder / "counters.json"
        self.counters = self._load_counters()
        self._index: dict[Path, int] = {}
        """Spooled files and their sizes, oldest first (the names sort by sequence)."""
        for path in spooled_files(folder):
            try:
                self._index[path] = path.stat().st_size
            except OSError:  # gone meanwhile
                continue
        foreign = [p.name for p in folder.glob(f"*{SUFFIX}") if p not in self._index]
        if foreign:
            log.warning("spool %s: not a spooled frame, left alone: %s", folder, ", ".join(foreign))
        # counters.json lost or reset while frames stayed: never reuse a spooled frame's name
        # (a new frame would overwrite it)
        self.counters.seq = max([self.counters.seq, *(seq_of(p) for p in self._index)])
        self._bytes = sum(self._index.values())
        self._lock = threading.Lock()  # the frame loop adds, the MQTT sender uploads
        self._troubles: set[str] = set()
        """Write problems logged since the last frame written (each once)."""
        self._deleted = False

    @property
    def spooled_bytes(self) -> int:
        return self._bytes

    def consider(
        self,
        decision: Decision,
        frame: Frame,
        site: str,
        device: str,
        captured_at: dt.datetime,
        novelty_model: LoadedModel | None = None,
        roi: Roi | None = None,
    ) -> str | None:
        """Score the frame's novelty, keep it if a rule says so; return the reason it was kept."""
        self.counters.seen += 1
        if decision.serving is None or decision.label is None:
            return None
        novelty = self.novelty.score(
            decision.camera, frame, novelty_model, roi, self.policy.novelty_threshold
        )
        reason = keep_reason(decision, self.policy, novelty)
        if reason is None and decision.label == "ok":
            reason = self._audit(decision.camera)
        if reason is None:
            if doubted(decision, self.policy, novelty):
                with self._lock:
                    self.counters.doubted += 1
            return None
        payload = envelope(
            decision, frame, site, device, captured_at, reason, self.jpeg_quality, novelty
        )
        if payload is None:
            return None
        score = keep_score(reason, decision, novelty, self.draws)
        with self._lock:
            return reason if self._store(payload, reason, score) else None

    def _audit(self, camera: str) -> Reason | None:
        with self._lock:
            stratum = self.counters.audit.setdefault(camera, {"population": 0, "sampled": 0})
            stratum["population"] += 1
            if not self.sampler.take(camera, self.policy.audit_rate or 0.0):
                return None
            stratum["sampled"] += 1
            return "audit"

    def next_upload(self, today: dt.date | None = None) -> tuple[Path, bytes] | None:
        """The most informative spooled frame (oldest first among equals), if today's upload
        budget still has room for it."""
        with self._lock:
            if self._deleted or not self._index:
                return None
            self._roll_day(today)
            budget = int(self.policy.daily_upload_budget_mb * MB)
            path = min(self._index, key=informative)
            if self.counters.bytes_today + self._index[path] > budget:
                return None
            return path, path.read_bytes()

    def uploaded(self, path: Path, size: int, today: dt.date | None = None) -> None:
        with self._lock:
            if self._deleted:  # the spool went away while the frame was on its way
                return
            self._roll_day(today)
            if self._index.pop(path, None) is not None:  # it may have been evicted meanwhile
                path.unlink(missing_ok=True)
                self._bytes -= size
            self.counters.uploaded += 1
            self.counters.uploaded_bytes += size
            self.counters.bytes_today += size
            counters = self.counters.reason(reason_of(path))
            counters.uploaded += 1
            counters.uploaded_bytes += size
            self.flush()

    def pending(self) -> int:
        return len(self._index)

    def pending_by_reason(self) -> dict[str, int]:
        with self._lock:
            found: dict[str, int] = {}
            for path in self._index:
                found[reason_of(path)] = found.get(reason_of(path), 0) + 1
            return found

    def mark_retired(self, at: float | None) -> None:
        """Record when the line stopped being served (None: it is served again)."""
        with self._lock:
            if not self._deleted:
                self.counters.retired_at = at
                self.flush()

    def delete(self) -> tuple[int, int]:
        """Remove the spool folder; return the frames and bytes that were still waiting."""
        with self._lock:
            self._deleted = True
            left = (len(self._index), self._bytes)
            self._index.clear()
            shutil.rmtree(self.folder, ignore_errors=True)
            return left

    def flush(self) -> None:
        try:  # a full disk must not stop inspection: the counters are written again next time
            write_atomic(self._counters_path, json.dumps(asdict(self.counters)).encode())
        except OSError as exc:
            self._trouble(f"counters.json not written ({exc.strerror or exc})")

    def _trouble(self, message: str) -> None:
        """Log a write problem once, not once per frame (a full disk lasts)."""
        if message not in self._troubles:
            log.warning("spool %s: %s", self.folder, message)
            self._troubles.add(message)

    def _store(self, payload: bytes, reason: Reason, score: float) -> bool:
        """Spool the frame, evicting less (or equally) informative ones if it must: the least
        informative reason first, the lowest score first within it, the oldest among equals."""
        if self._deleted:
            return False
        limit = int(self.policy.spool_mb * MB)
        path = self.folder / file_name(self.counters.seq + 1, reason, score)
        order = informative(path)[:2]
        victims: list[Path] = []
        room = limit - self._bytes
        if room < len(payload):
            ranked = {p: informative(p) for p in self._index}
            evictable = sorted(
                (p for p, key in ranked.items() if key[:2] >= order),
                key=lambda p: (-ranked[p][0], -ranked[p][1], p.name),
            )
            for candidate in evictable:
                if room >= len(payload):
                    break
                victims.append(candidate)
                room += self._index[candidate]
        self.counters.kept += 1
        counters = self.counters.reason(reason)
        counters.kept += 1
        counters.kept_bytes += len(payload)
        if room < len(payload):  # everything spooled is more informative: refuse this one
            self.counters.dropped(reason, len(payload))
            self.flush()
            return False
        for victim in victims:
            size = self._index.pop(victim)
            victim.unlink(missing_ok=True)
            self._bytes -= size
            self.counters.dropped(reason_of(victim), size)
        self.counters.seq += 1
        try:
            write_atomic(path, payload)
        except OSError as exc:  # a full or failing disk: the frame is dropped, inspection goes on
            self._trouble(f"frame not spooled ({exc.strerror or exc})")
            self.counters.dropped(reason, len(payload))
            self.flush()
            return False
        self._troubles.clear()
        self._index[path] = len(payload)
        self._bytes += len(payload)
        self.flush()
        return True

    def _roll_day(self, today: dt.date | None) -> None:
        day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
        if day != self.counters.day:
            self.counters.day = day
            self.counters.bytes_today = 0

    def _load_counters(self) -> SpoolCounters:
        try:
            data = self._counters_path.read_bytes()
        except FileNotFoundError:
            return SpoolCounters()
        except OSError as exc:
            log.warning("spool %s: counters.json unreadable (%s); counting anew", self.folder, exc)
            return SpoolCounters()
        try:  # typed: a counter of the wrong type would fail every frame later
            return _COUNTERS.validate_json(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "(document)"
            log.warning(
                "spool %s: counters.json: %s: %s; counting anew", self.folder, where, err["msg"]
            )
            return SpoolCounters()


_COUNTERS = TypeAdapter(SpoolCounters)


def spool_folder(root: Path, line: str) -> Path:
    """`spool/<site>__<line>` under the state directory's spool root."""
    return root / line.replace("/", "__")


def spooled_lines(root: Path) -> dict[str, Path]:
    """The lines that have a spool folder on disk, by line key."""
    if not root.is_dir():
        return {}
    return {p.name.replace("__", "/"): p for p in sorted(root.iterdir()) if p.is_dir()}


def peek(folder: Path) -> tuple[int, float | None]:
    """Frames waiting in a spool folder and its `retired_at`, without opening it as a spool."""
    retired_at = None
    try:
        value = json.loads((folder / "counters.json").read_bytes()).get("retired_at")
        retired_at = float(value) if isinstance(value, int | float) else None
    except (OSError, ValueError, AttributeError):
        pass
    return len(spooled_files(folder)), retired_at
