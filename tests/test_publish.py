"""Publishing to the Hub, end to end offline: the real `huggingface_hub` and `datasets` clients
against the test Hub of tests/hub_server.py on 127.0.0.1 (HF_ENDPOINT, Xet off).

The dataset folder comes from the real pipeline with the scripted teacher of test_pipeline.py
and a hashing embedder in place of MiniLM, so nothing here loads a model."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml

from factory.errors import FactoryError
from factory.pipeline import RunOptions, distill
from factory.publish import publish
from factory.splits import assign_splits, parse_splits
from factory.tasks import load_task
from tests.conftest import run_cli
from tests.hub_server import HubServer
from tests.test_pipeline import ScriptedTeacher

# A recognisable fake token: it must never reach the terminal or a file of the dataset folder.
TOKEN = "test-hub-token-for-factory-tests"
OWNER = "alice"
SPLITS = {"validation": 0.25, "test": 0.125}


def hashed_encode(self, texts: list[str]) -> np.ndarray:
    """A bag of hashed words: enough for k-center and the metrics, no model to load."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-9)


@pytest.fixture(autouse=True)
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("filters.diversity.MiniLMEmbedder.encode", hashed_encode)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real dataset folder (24 rows, train/validation/test), copied by the tests."""
    out = tmp_path_factory.mktemp("built") / "tickets"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("filters.diversity.MiniLMEmbedder.encode", hashed_encode)
        distill(load_task("support-tickets"), ScriptedTeacher(),
                RunOptions(out=out, num_records=24, seed=3, splits=SPLITS,
                           command="factory distill --task support-tickets -n 24 --seed 3 "
                                   "--splits validation=0.25,test=0.125"))
    return out


@pytest.fixture
def folder(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "tickets"))


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The test Hub, and this process's clients pointed at it (HF_ENDPOINT, token, no Xet)."""
    server = HubServer(tmp_path / "hub", tokens={TOKEN: OWNER}).start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # huggingface_hub read these when it was imported: whatever it asks on its own (the agent
    # registry for its user agent) goes to the test Hub too, and is cached under tmp_path
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", server.url)
    monkeypatch.setattr("huggingface_hub.constants.AGENT_HARNESSES_PATH",
                        str(tmp_path / "agent_harnesses.json"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_DISABLE_XET", True)
    yield server
    server.stop()


@pytest.fixture
def hub_env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI or loader subprocess that talks to the test Hub."""
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
            "HF_HOME": str(tmp_path / "hf-home"), "HF_DATASETS_CACHE": str(tmp_path / "hf-ds"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


LOADER = """
import json, sys
import datasets
out = []
for repo, revision, config in json.loads(sys.argv[1]):
    try:
        ds = datasets.load_dataset(repo, config, revision=revision)
        out.append({s: list(ds[s]["id"]) if "id" in ds[s].column_names else len(ds[s])
                    for s in ds})
    except Exception as exc:
        out.append({"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
print(json.dumps(out))
"""


def load_from_hub(env: dict[str, str], *requests: tuple[str, str | None, str | None]
                  ) -> list[dict]:
    """`datasets.load_dataset` in a fresh process (the clients read HF_ENDPOINT at import)."""
    import os

    full = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-c", LOADER, json.dumps(requests)], env=full,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def local_ids(folder: Path) -> dict[str, list[str]]:
    ds = datasets.load_dataset(str(folder))
    return {split: list(ds[split]["id"]) for split in ds}


def remote_card(hub: HubServer, repo: str, branch: str = "main") -> str:
    entry = hub.files(repo, branch)["README.md"]
    return hub.state.get_object(entry["sha256"]).decode()


# -- the whole path ----------------------------------------------------------------------------


def test_publish_cli_then_load_dataset_gives_the_same_rows_and_splits(folder, hub, hub_env):
    done = run_cli("publish", str(folder), "--repo-id", f"{OWNER}/tickets", env=hub_env,
                   timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Published to" in done.stdout and "load_dataset('alice/tickets')" in done.stdout

    loaded, rejected = load_from_hub(hub_env, (f"{OWNER}/tickets", None, None),
                                     (f"{OWNER}/tickets", None, "rejected"))
    assert loaded == local_ids(folder)
    assert set(loaded) == {"train", "validation", "test"}
    assert [len(loaded[s]) for s in ("train", "validation", "test")] == [15, 6, 3]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert rejected == {"train": manifest["generated"] - manifest["accepted"]}

    published = set(hub.files(f"{OWNER}/tickets"))
    assert {"README.md", "manifest.json"} <= published
    assert not any(p.startswith(".factory") or p.endswith(".log") for p in published)

    texts = [done.stdout, done.stderr]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]
    assert not any(TOKEN in text for text in texts)
    assert hub.unknown == []  # the test Hub answered every request the clients made


def test_the_card_metadata_parses_and_tells_how_the_data_was_made(folder, hub):
    from huggingface_hub import DatasetCard

    (folder / "report").mkdir()
    (folder / "report" / "report.json").write_text(json.dumps(
        {"headline": {"student accuracy (real test set)": 0.8125, "rows checked": 24,
                      "verdict": "usable"}, "details": {"ignored": [1, 2]}}))
    (folder / "report" / "report.html").write_text("<html><body>report</body></html>")
    (folder / "report" / "spot_check.csv").write_text("id,verdict\n")
    publish(folder, f"{OWNER}/tickets")
    published = hub.files(f"{OWNER}/tickets")
    assert {"report/report.json", "report/report.html"} <= set(published)
    assert "report/spot_check.csv" not in published
    card = DatasetCard(remote_card(hub, f"{OWNER}/tickets"))
    data = card.data.to_dict()
    assert data["license"] == "unknown" and data["language"] == ["en"]
    assert {"synthetic", "distillation"} <= set(data["tags"])
    assert data["size_categories"] == ["n<1K"]
    assert set(data["task_categories"]) == {"text-classification", "text-generation"}
    default, rejected = data["configs"]
    assert [f["split"] for f in default["data_files"]] == ["train", "validation", "test"]
    assert rejected["config_name"] == "rejected"
    for config in data["configs"]:
        for entry in config["data_files"]:
            assert entry["path"] in hub.files(f"{OWNER}/tickets")

    body = card.text
    for expected in ("Teacher: `scripted:rule`", "Judge: none", "temperature 0.9",
                     "sha256 `", "run seed 3", "| select | not_selected |",
                     "## Diversity", "## Splits", "stratified by `category`",
                     "## Validation report", "| student accuracy (real test set) | 0.8125 |",
                     "| verdict | usable |", "## Intended use", "## Limitations",
                     "--splits validation=0.25,test=0.125",
                     "datasets.load_dataset('alice/tickets')"):
        assert expected in body, expected
    assert "ignored" not in body
    # the folder's own card keeps loading from its path
    assert "load_dataset('DIR')" in (folder / "README.md").read_text()


def test_distill_pushes_at_checkpoints_and_at_the_end(hub, hub_env, tmp_path: Path):
    from factory.publish import HubPusher

    out = tmp_path / "live"
    # Rows become final a selection block at a time (4 rows per slice here): small batches let
    # the slices finish their blocks at different times.
    pusher = HubPusher(f"{OWNER}/live", every=4, private=False, revision=None)
    distill(load_task("support-tickets"), ScriptedTeacher(),
            RunOptions(out=out, num_records=24, seed=1, batch_size=4, checkpoint_rows=4,
                       after_write=pusher))
    messages = [hub.state.load("datasets", f"{OWNER}/live")["commits"][oid]["message"]
                for oid in hub.commits(f"{OWNER}/live")]
    assert messages[0] == "Final: 24 rows (train 24)" and messages[-1] == "initial commit"
    assert sum(m.startswith("Checkpoint: ") for m in messages) >= 2
    assert pusher.last is not None and pusher.last.commits
    assert load_from_hub(hub_env, (f"{OWNER}/live", None, None))[0] == local_ids(out)


# -- re-push, retries, several commits -----------------------------------------------------------


def test_a_repush_of_an_unchanged_folder_commits_nothing(folder, hub, hub_env):
    first = publish(folder, f"{OWNER}/tickets")
    commits = hub.commits(f"{OWNER}/tickets")
    assert first.commits and len(commits) == 2

    again = publish(folder, f"{OWNER}/tickets")
    assert again.commits == [] and again.uploaded == [] and again.deleted == []
    assert hub.commits(f"{OWNER}/tickets") == commits
    assert hub.count("POST", "/preupload/") == 1 and hub.count("PUT", "/lfs-objects/") == 4

    done = run_cli("publish", str(folder), "--repo-id", f"{OWNER}/tickets", env=hub_env,
                   timeout=120)
    assert done.returncode == 0 and "nothing to commit" in done.stdout
    assert hub.commits(f"{OWNER}/tickets") == commits


def test_a_new_version_replaces_the_old_data_files(folder, hub):
    publish(folder, f"{OWNER}/tickets")
    before = set(hub.files(f"{OWNER}/tickets"))
    distill(load_task("support-tickets"), ScriptedTeacher(),
            RunOptions(out=folder, num_records=30, seed=3, splits=SPLITS))
    result = publish(folder, f"{OWNER}/tickets", message="30 rows")
    after = set(hub.files(f"{OWNER}/tickets"))
    assert len(result.commits) == 1 and result.deleted
    assert set(result.deleted) == before - after
    local = {p.relative_to(folder).as_posix() for p in folder.glob("*/*.parquet")}
    assert {p for p in after if p.endswith(".parquet")} == local


def test_injected_429_and_503_are_retried(folder, hub):
    hub.fail("POST", "/api/repos/create", status=503, times=1, retry_after=0)
    hub.fail("POST", "/commit/", status=429, times=2, retry_after=0)
    result = publish(folder, f"{OWNER}/tickets")
    assert result.retries == 3
    assert hub.count("POST", "/api/repos/create") == 2
    assert [s for m, p, s in hub.requests if "/commit/" in p] == [429, 429, 200]
    assert len(hub.commits(f"{OWNER}/tickets")) == 2


def test_a_failed_push_in_several_commits_can_be_rerun(folder, hub, monkeypatch):
    repo = f"{OWNER}/small"
    publish(folder, repo, max_files=1)
    assert len(hub.commits(repo)) == 1 + 4 + 1  # initial; one per data file; card and manifest

    distill(load_task("support-tickets"), ScriptedTeacher(),
            RunOptions(out=folder, num_records=30, seed=3, splits=SPLITS))
    monkeypatch.setattr("factory.publish.MAX_ATTEMPTS", 2)
    hub.fail("POST", "/commit/", status=503, times=2, retry_after=0, after=2)
    before = len(hub.commits(repo))
    with pytest.raises(FactoryError, match="rerun the same command"):
        publish(folder, repo, max_files=1)
    assert len(hub.commits(repo)) == before + 2

    result = publish(folder, repo, max_files=1)
    assert len(result.commits) == 3 and len(hub.commits(repo)) == before + 5
    meta = hub.state.load("datasets", repo)
    for oid in hub.commits(repo)[:-1]:  # every commit holds the files its card names
        files = meta["commits"][oid]["files"]
        if "README.md" not in files:
            continue
        card = hub.state.get_object(files["README.md"]["sha256"]).decode()
        header = yaml.safe_load(card.split("---\n")[1])
        for config in header["configs"]:
            assert all(f["path"] in files for f in config["data_files"])
    assert publish(folder, repo, max_files=1).commits == []


# -- access, branches --------------------------------------------------------------------------


def test_a_private_repo_refuses_reads_without_the_token(folder, hub, hub_env):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    publish(folder, f"{OWNER}/secret", private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url, token=False).dataset_info(f"{OWNER}/secret")
    assert HfApi(endpoint=hub.url, token=TOKEN).dataset_info(f"{OWNER}/secret").private

    anonymous = {**hub_env, "HF_TOKEN": ""}
    refused = load_from_hub(anonymous, (f"{OWNER}/secret", None, None))[0]
    assert "error" in refused
    assert load_from_hub(hub_env, (f"{OWNER}/secret", None, None))[0] == local_ids(folder)


def test_a_revision_branch_leaves_main_alone(folder, hub, hub_env, tmp_path: Path):
    publish(folder, f"{OWNER}/tickets")
    main_head = hub.commits(f"{OWNER}/tickets")[0]
    other = Path(shutil.copytree(folder, tmp_path / "other"))
    distill(load_task("support-tickets"), ScriptedTeacher(),
            RunOptions(out=other, num_records=30, seed=3))
    done = run_cli("publish", str(other), "--repo-id", f"{OWNER}/tickets", "--revision", "v2",
                   "--message", "thirty rows, train only", env=hub_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "branch v2" in done.stdout
    assert hub.commits(f"{OWNER}/tickets")[0] == main_head
    assert hub.state.load("datasets", f"{OWNER}/tickets")["commits"][
        hub.commits(f"{OWNER}/tickets", "v2")[0]]["message"] == "thirty rows, train only"
    on_main, on_v2 = load_from_hub(hub_env, (f"{OWNER}/tickets", None, None),
                                   (f"{OWNER}/tickets", "v2", None))
    assert on_main == local_ids(folder)
    assert on_v2 == local_ids(other) and list(on_v2) == ["train"] and len(on_v2["train"]) == 30


# -- errors at the command line ------------------------------------------------------------------


def test_missing_token_and_bad_options_give_one_line_and_exit_2(folder, tmp_path: Path):
    no_token = {"HF_TOKEN": "", "HF_HOME": str(tmp_path / "empty-home"),
                "HF_ENDPOINT": "http://127.0.0.1:9"}
    cases = [
        (["publish", str(folder), "--repo-id", f"{OWNER}/x"], "HF_TOKEN"),
        (["publish", str(folder), "--repo-id", "no-owner"], "--repo-id"),
        (["publish", str(tmp_path), "--repo-id", f"{OWNER}/x"], "not a dataset folder"),
        (["distill", "--task", "support-tickets", "--splits", "validation=0.6,test=0.5"],
         "less than 1"),
        (["distill", "--task", "support-tickets", "--splits", "validation:0.1"], "NAME=RATIO"),
        (["distill", "--task", "support-tickets", "--push-every", "5"], "--push-to-hub"),
        (["distill", "--task", "support-tickets", "--push-to-hub", f"{OWNER}/x"], "HF_TOKEN"),
    ]
    for args, needle in cases:
        done = run_cli(*args, env=no_token, timeout=120)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, done.stderr)


# -- splits ------------------------------------------------------------------------------------


def test_splits_are_stratified_by_label_and_deterministic_by_seed():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    rows = [{"id": f"r{i:03d}", "label": label} for i, label in enumerate(labels)]
    ratios = {"validation": 0.1, "test": 0.2}
    split = assign_splits(rows, "label", ratios, seed=7)
    count = {s: {k: sum(r["label"] == k for r in split[s]) for k in "abc"} for s in split}
    assert count == {"train": {"a": 35, "b": 21, "c": 14}, "validation": {"a": 5, "b": 3, "c": 2},
                     "test": {"a": 10, "b": 6, "c": 4}}
    members = {s: {r["id"] for r in split[s]} for s in split}
    shuffled = assign_splits(list(reversed(rows)), "label", ratios, seed=7)
    assert {s: {r["id"] for r in shuffled[s]} for s in shuffled} == members
    other_seed = assign_splits(rows, "label", ratios, seed=8)
    assert {r["id"] for r in other_seed["test"]} != members["test"]
    assert assign_splits(rows, "label", {}, seed=7) == {"train": rows}
    # 7 rows at 10%: one validation row in all, from the largest label
    small = assign_splits(rows[45:52], "label", {"validation": 0.1}, seed=0)
    assert len(small["validation"]) == 1 and len(small["train"]) == 6
    two = assign_splits(rows[:2], "label", {"validation": 0.5, "test": 0.4}, seed=0)
    assert [len(two[s]) for s in ("train", "validation", "test")] == [1, 1, 0]


def test_split_options_and_config(task_dir: Path):
    assert parse_splits("validation=0.1, test=0.05") == {"validation": 0.1, "test": 0.05}
    assert parse_splits("") == {}
    for bad in ("validation=1", "dev=0.1", "validation=x", "test=0.5,validation=0.5"):
        with pytest.raises(FactoryError):
            parse_splits(bad)
    path = task_dir / "task.yaml"
    path.write_text(path.read_text() + "\nsplits: {validation: 0.2}\n")
    assert load_task(str(path)).config.splits == {"validation": 0.2}
    path.write_text(path.read_text() + "card: {license: apache-2.0, tags: [support]}\n")
    assert load_task(str(path)).config.card.license == "apache-2.0"
    path.write_text(path.read_text().replace("validation: 0.2", "validation: 1.2"))
    with pytest.raises(FactoryError, match="splits"):
        load_task(str(path))
