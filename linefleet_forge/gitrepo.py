"""Git plumbing shared by the reconciler and the trainer.

Two ways in. `open_repo`/`resolve` give GitPython objects (imported lazily: the edge never
needs git) for the callers that commit, push or fetch. `GitObjects` reads commits, trees and
blobs through plain `git` processes, for the hot path of reading a whole fleet at a revision:
one `git ls-tree` per revision and one `git cat-file --batch` for all of its blobs (GitPython
asks `git cat-file` one object at a time, a request and a reply per file), with every blob kept
by id, so a second revision of the same repository reads only the blobs that changed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linefleet_core import artifactref, yamlsafe
from linefleet_core.errors import UsageError
from linefleet_core.spec import (
    FLEET_DIR,
    NOT_IN_REPO,
    SUBMODULE,
    SYMLINK,
    TAXONOMY_DIR,
    YAML_NAMED_DIR,
    YAML_SUFFIXES,
    Refused,
    named,
)
from linefleet_core.yamlsafe import MAX_FILE_BYTES, ParsedBlobs
from linefleet_forge import catfile


def open_repo(path: Path | str) -> Any:
    """A `git.Repo` for `path` (or a parent), or a UsageError naming the folder."""
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(f"{path}: not a git repository") from None


def identity(repo: Any) -> str:
    """`Name <email>`: who git says is at work in `repo` (config, environment), else the OS user."""
    import getpass

    import git

    try:
        ident = str(repo.git.var("GIT_COMMITTER_IDENT"))
        return ident[: ident.index(">") + 1]
    except (git.GitCommandError, ValueError):
        return getpass.getuser()


def resolve(repo: Any, rev: str) -> Any:
    """The commit for `rev`, or a UsageError naming the revision."""
    import git

    try:
        return repo.commit(rev)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UsageError(f"unknown git revision {rev!r} in {repo.working_tree_dir}") from None


@dataclass(frozen=True)
class Commit:
    """A commit read through `GitObjects` (GitPython commits have the same `hexsha`)."""

    hexsha: str


@dataclass(frozen=True)
class Change:
    """One file that differs between two commits (an all-zero id on the side it is absent)."""

    path: str
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str

    @property
    def added(self) -> bool:
        return not self.old_oid.strip("0")

    @property
    def deleted(self) -> bool:
        return not self.new_oid.strip("0")


@dataclass
class GitObjects:
    """One repository's commits, trees and blobs, read through plain `git`; blobs kept by id."""

    git_dir: str
    work_tree: str = ""
    """The working tree's folder, as the caller spelled its path ('' when not opened by path)."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    digests: dict[tuple[str, int], artifactref.Digest] = field(default_factory=dict)
    """(blob id, limit) -> size and sha256 of the blob: the same file in two revisions (or,
    kept by `linefleet_forge.gitcache`, two runs) is hashed once."""
    listed: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    """commit -> path -> (mode, object id) of every file `fleet_files` listed there:
    `entry` answers from it without asking git again."""

    @classmethod
    def open(cls, path: Path) -> GitObjects:
        """The repository holding `path` (or a parent), or a UsageError naming the folder."""
        try:
            top, git_dir = _git(path, "rev-parse", "--show-toplevel", "--absolute-git-dir")
        except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError, ValueError):
            raise UsageError(f"{path}: not a git repository") from None
        return cls(os.fsdecode(git_dir), _as_spelled(path, Path(os.fsdecode(top))))

    def subfolder(self, path: Path) -> str:
        """Where `path` (a fleet repository) sits inside the work tree ('' at its root), as the
        prefix of its files in a commit's tree."""
        rel = path.resolve().relative_to(Path(self.work_tree).resolve()).as_posix()
        return "" if rel == "." else rel

    def commit(self, rev: str) -> Commit:
        """The commit for `rev`, or a UsageError naming the revision."""
        try:
            (sha,) = self._git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
        except (subprocess.CalledProcessError, ValueError):
            raise UsageError(f"unknown git revision {rev!r} in {self.work_tree}") from None
        return Commit(sha.decode())

    def fleet_files(
        self, sha: str, prefix: str, parsed: ParsedBlobs | None = None
    ) -> Iterator[tuple[str, bytes | Refused]]:
        """(path below `prefix`, content) of every YAML file under fleet/ and taxonomies/, and
        a `Refused` for every symbolic link, submodule or oversized YAML file there (the same
        refusals, in the same words, as `DirectorySource` gives for the working tree).

        The contents stream from one `git cat-file --batch` while the caller works on the
        files already handed over: git reads and inflates the next objects on the other core.
        The listing asks git for no sizes (`ls-tree -l` opens every loose object once more):
        an oversized file is refused by the size git gives when it answers. With `parsed`, the
        files' documents are parsed ahead into it (`contents`)."""
        base = f"{prefix}/" if prefix else ""
        tops = [f"{base}{top}" for top in (FLEET_DIR, TAXONOMY_DIR)]
        listing = self._git("ls-tree", "-r", "-z", "--full-tree", sha, "--", *tops, sep=b"\0")
        found: dict[str, list[tuple[str, str | Refused]]] = {top: [] for top in tops}
        entries = self.listed.setdefault(sha, {})
        for row in listing:
            meta, _, name = row.partition(b"\t")
            mode, kind, blob = meta.split()
            full = os.fsdecode(name)
            top = next((t for t in tops if full.startswith(f"{t}/") or full == t), None)
            if top is None:
                continue
            entries[full] = (mode.decode(), blob.decode())
            rel = full[len(base) :]
            folder = _yaml_named_folder(rel)
            if folder is not None:  # its files are not read, the folder is refused once
                if (folder, YAML_NAMED_DIR) not in found[top]:
                    found[top].append((folder, YAML_NAMED_DIR))
                continue
            if mode == b"120000":
                found[top].append((rel, SYMLINK))
            elif kind == b"commit":
                found[top].append((rel, SUBMODULE))
            elif kind == b"blob" and full.endswith(YAML_SUFFIXES):
                found[top].append((rel, blob.decode()))
        files = [item for top in tops for item in sorted(found[top], key=lambda x: x[0])]
        oids = [oid for _, oid in files if isinstance(oid, str)]
        with contextlib.closing(self.contents(oids, MAX_FILE_BYTES, parsed)) as content:
            for path, oid in files:
                yield named(path, oid if isinstance(oid, Refused) else next(content))

    def entry(self, sha: str, path: str) -> tuple[str, str] | None:
        """(mode, object id) of the file at `path` in commit `sha`, or None."""
        known = self.listed.get(sha, {}).get(path)
        if known is not None:
            return known  # (a folder, or a file outside fleet/: git is asked below)
        rows = self._git("ls-tree", "-z", "--full-tree", sha, "--", path, sep=b"\0")
        for row in rows:
            meta, _, name = row.partition(b"\t")
            mode, _, oid = meta.split()
            if os.fsdecode(name) == path:
                return mode.decode(), oid.decode()
        return None

    def stream(self, oid: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The content of one blob in chunks, without holding it all in memory."""
        env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1"}
        argv = ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", oid]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env) as proc:
            assert proc.stdout is not None
            while block := proc.stdout.read(chunk):
                yield block

    def read(self, oids: Iterable[str]) -> dict[str, bytes]:
        """The content of each blob, from one `git cat-file --batch` for those not read yet."""
        wanted = list(dict.fromkeys(oids))
        for _ in self.contents(wanted):
            pass  # (kept in `blobs` as they come)
        return {oid: self.blobs[oid] for oid in wanted}

    def contents(
        self, oids: list[str], limit: int | None = None, parsed: ParsedBlobs | None = None
    ) -> Generator[bytes | Refused, None, None]:
        """The content of each of `oids`, in order, streamed from one `git cat-file --batch`
        (`linefleet_forge.catfile`; blobs read before come from memory, the rest are kept); a
        blob over `limit` bytes is refused as too large, its content skipped, not kept. A
        missing object is a UsageError when the iteration reaches it.

        With `parsed`, each blob read whose document it does not know yet is parsed on the
        way (`yamlsafe.document`; in a worker process when there are many), into
        `parsed.ahead` by its git blob id."""
        missing = [oid for oid in dict.fromkeys(oids) if oid not in self.blobs]
        streamed: Generator[tuple[str, bytes | Refused, Any], None, None]
        if parsed is None:
            streamed = ((o, c, None) for o, c in catfile.batch(self.git_dir, missing, limit))
        else:
            streamed = catfile.parsed_batch(
                self.git_dir, missing, limit, yamlsafe.document, parsed.known
            )
        refused: dict[str, Refused] = {}
        with contextlib.closing(streamed):
            for oid in oids:
                while oid not in self.blobs and oid not in refused:
                    got, data, doc = next(streamed)
                    if isinstance(data, Refused):
                        refused[got] = data
                        continue
                    self.blobs[got] = data
                    if doc is not None and parsed is not None:
                        parsed.ahead[got] = doc
                yield refused.get(oid) or self.blobs[oid]

    def changes(self, old: str, new: str, prefix: str) -> list[Change]:
        """Every file under fleet/ and taxonomies/ (below `prefix`) that differs between two
        commits, with its mode and blob id on each side (renames count as delete + add)."""
        base = f"{prefix}/" if prefix else ""
        tops = [f"{base}{top}" for top in (FLEET_DIR, TAXONOMY_DIR)]
        rows = self._git(
            "diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new, "--", *tops,
            sep=b"\0",
        )  # fmt: skip
        out = []
        for meta, name in zip(rows[::2], rows[1::2], strict=True):
            old_mode, new_mode, old_oid, new_oid, _status = meta.decode().lstrip(":").split()
            out.append(Change(os.fsdecode(name)[len(base) :], old_mode, new_mode, old_oid, new_oid))
        return out

    def sizes(self, sha: str, paths: Iterable[str]) -> dict[str, tuple[str, str, int]]:
        """(mode, blob id, size) of each of `paths` (repository-relative) that `sha` has."""
        wanted = list(paths)
        out: dict[str, tuple[str, str, int]] = {}
        for start in range(0, len(wanted), 2000):  # keep the command line short
            rows = self._git(
                "ls-tree", "-z", "-l", "--full-tree", sha, "--", *wanted[start : start + 2000],
                sep=b"\0",
            )  # fmt: skip
            for row in rows:
                meta, _, name = row.partition(b"\t")
                mode, _, oid, size = meta.split()
                out[os.fsdecode(name)] = (
                    mode.decode(),
                    oid.decode(),
                    -1 if size == b"-" else int(size),
                )
        return out

    def _git(self, *args: str, sep: bytes = b"\n") -> list[bytes]:
        return [row for row in self._run(*args).split(sep) if row]

    def _run(self, *args: str) -> bytes:
        return _run(["git", f"--git-dir={self.git_dir}", *args], None)


@dataclass
class GitSource:
    """Fleet files as they are at one commit, read from git objects (no checkout)."""

    commit: Any
    """A GitPython commit, or a `Commit` from `objects.commit()`."""
    prefix: str = ""  # the fleet repository's folder inside the git repository, if not the root
    objects: GitObjects | None = None
    """Where to read it (and keep what was read); by default the GitPython commit's repository."""
    parsed: ParsedBlobs | None = None
    """Parse the files' documents ahead into this (`GitObjects.contents`): pass the same to
    `linefleet_core.spec.load`, which then parses none of them itself."""

    @property
    def label(self) -> str:
        return f"commit {self.commit.hexsha[:12]}"

    def files(self) -> Iterator[tuple[str, bytes | Refused]]:
        return self._objects().fleet_files(str(self.commit.hexsha), self.prefix, self.parsed)

    def artifact_digest(self, path: str, limit: int) -> artifactref.Digest | artifactref.Unreadable:
        """Size and sha256 of a repository file at this commit (links are not followed)."""
        objects = self._objects()
        full = f"{self.prefix}/{path}" if self.prefix else path
        found = objects.entry(str(self.commit.hexsha), full)
        if found is None:
            return NOT_IN_REPO
        mode, oid = found
        if mode == "120000":
            return artifactref.Unreadable(f"{path} is {SYMLINK.message}")
        if mode == "160000":
            return artifactref.Unreadable(f"{path} is {SUBMODULE.message}")
        if mode == "040000":
            return artifactref.Unreadable("a directory, not a regular file")
        digest = objects.digests.get((oid, limit))
        if digest is None:
            digest = objects.digests[(oid, limit)] = artifactref.digest_of(
                objects.stream(oid), limit
            )
        return digest

    def _objects(self) -> GitObjects:
        if self.objects is None:
            self.objects = GitObjects(str(self.commit.repo.git_dir))
        return self.objects


def _git(path: Path, *args: str) -> list[bytes]:
    return [row for row in _run(["git", *args], path).split(b"\n") if row]


def _run(argv: list[str], cwd: Path | None) -> bytes:
    env = {**os.environ, "GIT_LITERAL_PATHSPECS": "1"}  # paths are paths, not patterns
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, env=env, check=True)
    except FileNotFoundError as exc:
        if exc.filename == "git":
            raise UsageError("git is not installed (or not on PATH)") from None
        raise
    return proc.stdout


def _as_spelled(path: Path, top: Path) -> str:
    """`top` as a parent of `path` spelled the caller's way (git resolves symbolic links)."""
    here = Path(os.path.normpath(Path(path).absolute()))
    for folder in (here, *here.parents):
        if folder.exists() and folder.samefile(top):
            return str(folder)
    return str(top)


def push(repo: Any, remote: str, refspec: str, *, force: bool = False) -> None:
    """Push and fail loudly: GitPython reports a rejected push only in the result flags."""
    import git

    try:
        infos = repo.remote(remote).push(refspec=refspec, force=force)
        infos.raise_if_error()
    except git.GitCommandError as exc:
        raise UsageError(
            f"git push {remote} {refspec} failed: {exc.stderr.strip() or exc}"
        ) from None
    for info in infos:
        if info.flags & (info.ERROR | info.REJECTED | info.REMOTE_REJECTED | info.REMOTE_FAILURE):
            raise UsageError(f"git push {remote} {refspec} was rejected: {info.summary.strip()}")


def _yaml_named_folder(rel: str) -> str | None:
    """The first folder of `rel` (below fleet/ or taxonomies/) named like a YAML file, as the
    working tree refuses it (`linefleet_core.spec.YAML_NAMED_DIR`), else None."""
    parts = rel.split("/")
    for i in range(1, len(parts) - 1):
        if parts[i].endswith(YAML_SUFFIXES):
            return "/".join(parts[: i + 1])
    return None
