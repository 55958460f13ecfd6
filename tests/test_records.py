"""Provenance of results: what `records.provenance()` and `records.git_commit()` report, and that
every results document carries it."""

import datetime
import os
import subprocess

import jax
import jaxlib

import supernet
from supernet import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def git(directory, *args):
    subprocess.run(["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True, timeout=60)


def test_provenance_names_version_code_and_machine():
    found = records.provenance()
    assert found["version"] == supernet.__version__
    assert found["jax"] == jax.__version__ and found["jaxlib"] == jaxlib.__version__
    assert found["backend"] == jax.default_backend() and found["device_kind"] == jax.devices()[0].device_kind
    assert found["device_count"] == jax.device_count() and found["process_count"] == jax.process_count()
    measured = datetime.datetime.fromisoformat(found["utc"])
    assert measured.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - measured).total_seconds()) < 60
    here = found["git"]  # the tests run from a checkout
    assert len(here["commit"]) == 40 and int(here["commit"], 16) >= 0 and isinstance(here["dirty"], bool)


def test_git_commit_of_a_checkout_clean_then_dirty(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert records.git_commit(str(tmp_path)) == {"commit": head, "dirty": False}
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.git_commit(str(tmp_path)) == {"commit": head, "dirty": True}


def test_git_commit_is_none_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    outside = tmp_path / "not_a_checkout"
    outside.mkdir()
    assert records.git_commit(str(outside)) is None
    git(tmp_path, "init", "-q")  # a folder inside a checkout whose files it does not track
    assert records.git_commit(str(outside)) is None
    monkeypatch.setenv("PATH", str(tmp_path / "no_programs_here"))
    assert records.git_commit(REPO) is None
    assert records.provenance()["git"] is None


def test_results_document_carries_provenance():
    document = records.results_document({"best_arch": "a", "best_accuracy": 0.5}, job="search", config={},
                                        fingerprint="f")
    assert set(document["provenance"]) == set(records.provenance())
