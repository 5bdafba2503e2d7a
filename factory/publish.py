"""Publishing a dataset folder to the Hugging Face Hub (or any server that speaks its API).

    result = publish(Path("runs/support-tickets"), "me/support-tickets", private=True)
    result.commits      # [] when the Hub already held exactly these files

What goes up: the card (`README.md`, its loading snippet rewritten with the repo id and its
report section refreshed from `report/report.json`), `manifest.json`, `data/*.parquet`,
`rejected/*.parquet`, and `report/report.json` and `report/report.html` when they exist.
Never the `.factory/` state, the response cache or the run log.

Every call compares the folder with the branch's files (sha256 for LFS files, the git blob id
for the rest) and commits only what differs: a re-push of an unchanged folder commits nothing,
and a push that failed half-way can simply be run again. Data files go up in commits of at most
`max_files` files or `max_bytes` bytes when they do not fit in one; the card, the manifest and
the removal of replaced data files come last, so every commit on the branch is a loadable
dataset. Rate limits (429), server
errors (5xx) and dropped connections are retried with exponential backoff, honouring
`Retry-After`.

The token comes from the caller, `HF_TOKEN` or the huggingface_hub login; it is passed to the
client and never printed, logged or written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from factory.errors import FactoryError
from factory.output import load_section, replace_region, report_section

log = logging.getLogger(__name__)

T = TypeVar("T")

# Folders whose files the factory owns in the repo: a file there that the folder no longer has
# (a data file replaced by a newer version) is deleted. Other files in the repo are left alone.
MANAGED_FOLDERS = ("data/", "rejected/")
# What `factory report` writes that a reader of the repo wants: the numbers and the page.
REPORT_FILES = ("report/report.json", "report/report.html")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# Retries: attempts per call, the longest wait between two, and the statuses worth retrying.
MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 60.0
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}


@dataclass
class PublishResult:
    repo_id: str
    revision: str
    url: str
    commits: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retries: int = 0


class LocalFile:
    """A file to publish: a file of the folder (read in chunks, never whole) or bytes made
    for the repo (the card)."""

    def __init__(self, path: str, source: Path | None = None, data: bytes | None = None) -> None:
        self.path, self.source, self.data = path, source, data
        assert (source is None) != (data is None), "give a source file or data"
        self.size = len(data) if data is not None else Path(str(source)).stat().st_size
        self._sha256: str | None = None
        self._git_oid: str | None = None

    def chunks(self) -> Any:
        if self.data is not None:
            yield self.data
            return
        with open(self.source, "rb") as f:  # type: ignore[arg-type]
            while chunk := f.read(2**20):
                yield chunk

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            digest = hashlib.sha256()
            for chunk in self.chunks():
                digest.update(chunk)
            self._sha256 = digest.hexdigest()
        return self._sha256

    @property
    def git_oid(self) -> str:
        """The git blob id: sha1 of `blob SIZE`, a NUL byte and the content."""
        if self._git_oid is None:
            digest = hashlib.sha1(b"blob %d\0" % self.size)
            for chunk in self.chunks():
                digest.update(chunk)
            self._git_oid = digest.hexdigest()
        return self._git_oid

    @property
    def content(self) -> bytes | str:
        """What the Hub client uploads: the bytes, or the path to read them from."""
        return self.data if self.data is not None else str(self.source)


def resolve_token(token: str | None = None) -> str:
    """The token to publish with: the argument, else HF_TOKEN, else the huggingface_hub login."""
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise FactoryError("no Hugging Face token found", field="HF_TOKEN",
                           hint="set HF_TOKEN to a token with write access, or run "
                                "`hf auth login`")
    return found


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id):
        raise FactoryError(f"{repo_id!r} is not a repo id", field="--repo-id",
                           hint="write OWNER/NAME, e.g. my-org/support-tickets")
    return repo_id


def publish(folder: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
            message: str | None = None, token: str | None = None, endpoint: str | None = None,
            max_files: int = 50, max_bytes: int = 500 * 2**20,
            say: Callable[[str], None] | None = None) -> PublishResult:
    """Make branch `revision` (default main) of dataset repo `repo_id` hold the folder's
    dataset files: creates the repo and the branch if missing, commits only what changed.
    `say` hears about retries (they are logged either way)."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    local = dataset_files(Path(folder), repo_id)
    # HF_ENDPOINT is read here, not only when huggingface_hub was imported: a process that
    # changes it (a test pointing at its own server) never reaches the real Hub by mistake.
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None,
                token=resolve_token(token), library_name="distill-factory")
    branch = revision or "main"
    result = PublishResult(repo_id, branch, f"{api.endpoint}/datasets/{repo_id}")
    call = _Caller(result, say)
    with hub_errors(repo_id):
        call(api.create_repo, repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch != "main":
            call(api.create_branch, repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        remote = call(remote_files, api, repo_id, branch)
        changed = [p for p in local if not same_file(local[p], remote.get(p))]
        stale = [p for p in remote if p.startswith(MANAGED_FOLDERS) and p not in local]
        result.unchanged = [p for p in local if p not in changed]
        summary = message or f"Update dataset ({len(changed)} files changed, {len(stale)} removed)"
        for i, (adds, deletes) in enumerate(plan_commits(local, changed, stale, max_files,
                                                         max_bytes)):
            text = summary if i == 0 else f"{summary} (part {i + 1})"
            oid = call(commit_changes, api, repo_id, branch, local, adds, deletes, text)
            if oid:
                result.commits.append(oid)
        result.uploaded, result.deleted = changed, stale
    log.info("published %s@%s: %d commits, %d files uploaded, %d removed, %d unchanged",
             repo_id, branch, len(result.commits), len(changed), len(stale),
             len(result.unchanged))
    return result


class HubPusher:
    """The distill run's hook after each write: publishes at the end of a run, and with
    `every`, at each checkpoint once the accepted count passed another multiple of it.

    A push during the run that fails is logged and retried at the next one; the last push's
    failure stops the command with one line (the dataset folder is complete either way)."""

    def __init__(self, repo_id: str, every: int | None, private: bool,
                 revision: str | None) -> None:
        self.repo_id, self.every = repo_id, every
        self.private, self.revision = private, revision
        self.pushed_at = 0
        self.last: PublishResult | None = None
        self.say: Callable[[str], None] = log.info

    def __call__(self, run: Any, final: bool) -> None:
        if final and (run.interrupted or run.stopped):
            return
        if not final and not (self.every and run.rows // self.every
                              > self.pushed_at // self.every):
            return
        try:
            self.last = publish(run.out, self.repo_id, private=self.private,
                                revision=self.revision, message=_push_message(run.out, final),
                                say=self.say)
        except FactoryError as exc:
            if final:
                raise
            log.warning("checkpoint push failed: %s", exc)
            self.say(f"push to {self.repo_id} failed, retrying at the next checkpoint: {exc}")
            return
        self.pushed_at = run.rows
        if not final:
            self.say(f"pushed {run.rows} accepted rows to {self.repo_id}")


def _push_message(folder: Path, final: bool) -> str:
    """`Final: 24 rows (train 15, validation 6, test 3)`, from the folder's manifest."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    rows = (manifest.get("splits") or {}).get("rows") or {"train": manifest.get("accepted", 0)}
    parts = ", ".join(f"{name} {n}" for name, n in rows.items())
    return f"{'Final' if final else 'Checkpoint'}: {sum(rows.values())} rows ({parts})"


# -- what goes up ----------------------------------------------------------------------------


def dataset_files(folder: Path, repo_id: str) -> dict[str, LocalFile]:
    """The files to publish, by path in the repo, with the content they will have there."""
    card = folder / "README.md"
    if not card.is_file() or not (folder / "manifest.json").is_file():
        raise FactoryError("not a dataset folder (no README.md and manifest.json)", path=folder,
                           hint="give the --out folder of `factory distill` or `factory filter`")
    files = {"README.md": LocalFile("README.md", data=publish_card(folder, repo_id).encode()),
             "manifest.json": LocalFile("manifest.json", folder / "manifest.json")}
    for name in MANAGED_FOLDERS:
        for path in sorted((folder / name).glob("*.parquet")):
            rel = path.relative_to(folder).as_posix()
            files[rel] = LocalFile(rel, path)
    for name in REPORT_FILES:
        if (folder / name).is_file():
            files[name] = LocalFile(name, folder / name)
    return files


def publish_card(folder: Path, repo_id: str) -> str:
    """The card as the repo shows it: loading by repo id, the report's latest headline."""
    card = (folder / "README.md").read_text(encoding="utf-8")
    card = replace_region(card, "load", load_section(repo_id)[1:-2])
    return replace_region(card, "report", report_section(folder))


def remote_files(api: Any, repo_id: str, branch: str) -> dict[str, Any]:
    """The branch's files by path (`RepoFile`s: `blob_id`, and `lfs.sha256` for LFS files)."""
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, repo_type="dataset", revision=branch, recursive=True)
    return {f.path: f for f in tree if isinstance(f, RepoFile)}


def same_file(local: LocalFile, remote: Any | None) -> bool:
    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == local.sha256
    return remote.blob_id == local.git_oid


def plan_commits(local: dict[str, LocalFile], changed: list[str], stale: list[str],
                 max_files: int, max_bytes: int) -> list[tuple[list[str], list[str]]]:
    """(additions, deletions) per commit. One commit when the changes fit under the caps; else
    data files in batches under the caps, then the card, manifest and report with the
    deletions, so that no commit on the branch points at a missing file."""
    if not changed and not stale:
        return []
    data = [p for p in changed if p.startswith(MANAGED_FOLDERS)]
    if len(data) <= max_files and sum(local[p].size for p in data) <= max_bytes:
        return [(list(changed), list(stale))]
    batches: list[list[str]] = []
    size = 0
    for path in data:
        n = local[path].size
        if not batches or len(batches[-1]) >= max_files or (batches[-1] and size + n > max_bytes):
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += n
    last = [p for p in changed if p not in data]
    return [*((batch, []) for batch in batches), (last, list(stale))]


def commit_changes(api: Any, repo_id: str, branch: str, local: dict[str, LocalFile],
                   adds: list[str], deletes: list[str], message: str) -> str | None:
    """One commit of `adds` and `deletes`, re-checked against the branch first, so that a retry
    after a commit that did land (its answer lost) commits nothing twice. Gives its oid."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    remote = remote_files(api, repo_id, branch)
    adds = [p for p in adds if not same_file(local[p], remote.get(p))]
    deletes = [p for p in deletes if p in remote]
    if not adds and not deletes:
        return None
    operations: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=local[p].content)
                             for p in adds]
    operations += [CommitOperationDelete(path_in_repo=p) for p in deletes]
    info = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset",
                             revision=branch)
    log.info("commit %s on %s@%s: %d added, %d deleted", info.oid, repo_id, branch, len(adds),
             len(deletes))
    return info.oid


# -- retries and errors ----------------------------------------------------------------------


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: a rate limit, a server error, a timeout or a dropped connection."""
    if _status(exc) in TRANSIENT_STATUSES:
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"TransportError", "TimeoutException", "NetworkError"}) or isinstance(
        exc, (ConnectionError, TimeoutError))


def retry_after(exc: BaseException) -> float | None:
    """The server's `Retry-After` in seconds (only the delta-seconds form), capped."""
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return min(max(float(value), 0.0), MAX_WAIT_SECONDS) if value is not None else None
    except ValueError:
        return None


class _Caller:
    """Calls Hub functions with retries on transient errors, counting them in the result."""

    def __init__(self, result: PublishResult, say: Callable[[str], None] | None) -> None:
        self.result = result
        self.say = say

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from tenacity import (Retrying, retry_if_exception, stop_after_attempt,
                              wait_exponential_jitter)

        backoff = wait_exponential_jitter(initial=1.0, max=MAX_WAIT_SECONDS, jitter=1.0)

        def wait(state: Any) -> float:
            exc = state.outcome.exception()
            server = retry_after(exc) if exc is not None else None
            return server if server is not None else backoff(state)

        def note(state: Any) -> None:
            self.result.retries += 1
            exc = state.outcome.exception()
            status = _status(exc)
            what = f"the Hub answered {status}" if status else f"no answer ({type(exc).__name__})"
            line = (f"{what} to {fn.__name__}; retrying in {state.next_action.sleep:.1f}s "
                    f"(attempt {state.attempt_number + 1} of {MAX_ATTEMPTS})")
            log.info("%s", line)
            if self.say is not None:
                self.say(line)

        for attempt in Retrying(retry=retry_if_exception(is_transient), wait=wait,
                                stop=stop_after_attempt(MAX_ATTEMPTS), before_sleep=note,
                                reraise=True):
            with attempt:
                return fn(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises the last error")


class hub_errors:  # noqa: N801 - used as a context manager, reads like a function
    """Turns the Hub's answers into one line a user can act on."""

    def __init__(self, repo_id: str) -> None:
        self.repo_id = repo_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, FactoryError):
            return False
        status = _status(exc)
        rerun = "rerun the same command: publishing only sends what the Hub is missing"
        if status in (401, 403):
            raise FactoryError(f"the Hub refused the token for {self.repo_id} ({status})",
                               field="HF_TOKEN",
                               hint="use a token with write access to its owner") from None
        if status is not None:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise FactoryError(f"the Hub answered {status} for {self.repo_id}: {first}",
                               hint=rerun) from None
        if is_transient(exc):
            raise FactoryError(f"cannot reach the Hub ({type(exc).__name__})",
                               field="HF_ENDPOINT", hint=rerun) from None
        return False
