"""Code version: git when the checkout is one; the launcher's ``METABENCH_GIT_*`` for a copy without ``.git``."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from metabench.harness import provenance

REPO = Path(__file__).resolve().parents[2]


def _no_git(*args: object, **kwargs: object) -> None:
    raise FileNotFoundError("git")


def test_copy_without_git_records_the_launchers_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance.subprocess, "run", _no_git)
    monkeypatch.delenv("METABENCH_GIT_REVISION", raising=False)
    monkeypatch.delenv("METABENCH_GIT_DIRTY", raising=False)
    assert provenance.code_version()["git_revision"] is None
    monkeypatch.setenv("METABENCH_GIT_REVISION", "a" * 40)
    assert provenance.code_version()["git_revision"] == "a" * 40
    assert provenance.code_version()["git_dirty"] is None  # not vouched for
    monkeypatch.setenv("METABENCH_GIT_DIRTY", "0")
    assert provenance.code_version()["git_dirty"] is False
    monkeypatch.setenv("METABENCH_GIT_DIRTY", "1")
    assert provenance.code_version()["git_dirty"] is True


def _manifest_module():  # benchmarks/ is not a package
    spec = importlib.util.spec_from_file_location("tree_manifest", REPO / "benchmarks" / "tree_manifest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_tree_manifest_accepts_an_exact_copy_and_names_a_changed_file(tmp_path: Path) -> None:
    tm = _manifest_module()
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.py").write_text("x = 1\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "b.txt").write_bytes(b"\x00\x01binary")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    manifest = tm.write(tmp_path / "m.json", repo)
    assert manifest["files"]["a.py"] == subprocess.run(
        [*git, "rev-parse", "HEAD:a.py"], capture_output=True, text=True, check=True).stdout.strip()
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    assert tm.check(tmp_path / "m.json", copy) == []
    (copy / "sub" / "b.txt").write_bytes(b"changed")
    (copy / "a.py").unlink()
    assert sorted(tm.check(tmp_path / "m.json", copy)) == ["a.py (missing)", "sub/b.txt"]
    (repo / "a.py").write_text("x = 2\n")  # uncommitted change: write refuses
    with pytest.raises(SystemExit, match="uncommitted"):
        tm.write(tmp_path / "m2.json", repo)


def test_changed_outputs_do_not_make_the_code_dirty() -> None:
    """A reproduction script rewrites its summary under benchmarks/results/ between runs; that is a
    result, not a code change. Anything else is named."""
    status = (" M benchmarks/results/seed003_omniglot.json\n M leaderboard/README.md\n"
              " M baselines/turtle.py\nR  docs/a.md -> docs/b.md\n")
    assert provenance.changed_code_files(status) == ["baselines/turtle.py", "docs/b.md"]
    assert provenance.changed_code_files(" M leaderboard/results/x.json\n") == []
    assert provenance.changed_code_files("") == []
