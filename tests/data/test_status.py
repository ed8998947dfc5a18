"""``dataset_status`` / ``format_status`` / ``prepare`` on generated files."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import pytest

from metabench.data import dataset_status, file_digest, format_status, prepare
from metabench.data import manifest as M
from metabench.errors import DataError, UnknownIdError

REAL = os.environ.get("METABENCH_DATA")


def _zip(path: Path, stem: str, alphabets: tuple[str, ...]) -> Path:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for a in alphabets:
            for c in (1, 2):
                for d in range(1, 21):
                    buf = io.BytesIO()
                    Image.fromarray(rng.random((16, 16)) < 0.8).save(buf, format="PNG")
                    zf.writestr(f"{stem}/{a}/character{c:02d}/{c:04d}_{d:02d}.png", buf.getvalue())
    return path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("METABENCH_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "data" / "omniglot"
    d.mkdir(parents=True)
    z1 = _zip(d / "images_background_small1.zip", "images_background_small1", ("Balinese", "Early_Aramaic", "Korean", "Greek"))
    z2 = _zip(d / "images_background_small2.zip", "images_background_small2", ("Japanese_(katakana)", "Sanskrit", "Latin", "Tagalog"))
    sums = {z.name: file_digest(z) for z in (z1, z2)}
    files = tuple(dataclasses.replace(f, sha256=sums[f.name]) if f.name in sums else f for f in M.OMNIGLOT.files)
    monkeypatch.setitem(M.DATASETS, "omniglot", dataclasses.replace(M.OMNIGLOT, files=files))
    return tmp_path / "data"


def _row(rows, variant: str):
    return next(r for r in rows if r.name == "omniglot" and r.variant == variant)


def test_found_and_missing(root: Path) -> None:
    rows = dataset_status(root)
    assert _row(rows, "lite").state == "found" and "checksum ok" in _row(rows, "lite").detail
    full = _row(rows, "full")
    assert full.state == "missing" and "images_background.zip" in full.detail and str(root / "omniglot") in full.detail
    table = format_status(rows)
    assert "omniglot[lite]" in table and "found" in table and "missing" in table


def test_corrupt_checksum_and_unopenable_zip(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = root / "omniglot" / "images_background_small1.zip"
    z.write_bytes(z.read_bytes()[:-10])
    row = _row(dataset_status(root), "lite")
    assert row.state == "corrupt" and "sha256 mismatch" in row.detail
    no_sums = tuple(dataclasses.replace(f, sha256=None, md5=None) for f in M.DATASETS["omniglot"].files)
    monkeypatch.setitem(M.DATASETS, "omniglot", dataclasses.replace(M.OMNIGLOT, files=no_sums))
    row = _row(dataset_status(root), "lite")
    assert row.state == "corrupt" and "does not open" in row.detail


def test_extracted_folder_counts_as_found(root: Path) -> None:
    ev = root / "omniglot" / "images_evaluation" / "Angelic" / "character01"
    ev.mkdir(parents=True)
    (ev / "x.png").write_bytes(b"x")
    full = _row(dataset_status(root, checksums=False), "full")
    assert full.state == "missing" and "images_background.zip" in full.detail and "images_evaluation" not in full.detail


def test_prepare_builds_the_cache(root: Path) -> None:
    out = prepare("omniglot", root=root)
    assert [o["env_id"] for o in out] == ["omniglot-lite-5w1s-v0"] and len(out[0]["data_hash"]) == 64
    cache = Path(os.environ["METABENCH_CACHE"])
    assert any(p.name.startswith("omniglot-28-") for p in cache.iterdir())
    assert prepare("omniglot-lite-5w5s", root=root)[0]["data_hash"] == out[0]["data_hash"]


def test_prepare_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images_background_small1.zip"):
        prepare("omniglot", root=tmp_path)
    with pytest.raises(UnknownIdError, match="neither a dataset"):
        prepare("omniglott", root=tmp_path)


@pytest.mark.data
@pytest.mark.skipif(REAL is None or not (Path(REAL) / "omniglot").is_dir(), reason="$METABENCH_DATA/omniglot not present")
def test_real_data_status() -> None:
    assert _row(dataset_status(), "lite").state == "found"


def test_discover_datasets_finds_module_level_infos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Env modules register datasets lazily; a status listing imports them and picks up their DatasetInfo."""
    import metabench
    from metabench.data.status import discover_datasets

    (tmp_path / "toy_dataset_env.py").write_text(
        "from metabench.data.manifest import DatasetInfo, RemoteFile\n"
        "TOY = DatasetInfo('toy-ds', 'toy', (RemoteFile('toy.zip'),), 'put toy.zip in <root>/toy/')\n"
        "class ToyEnv:  # never built here\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("metabench.data.manifest.DATASETS", dict(M.DATASETS))
    monkeypatch.setattr("metabench.data.status.DATASETS", M.DATASETS)
    spec = metabench.register("toy-ds-5w1s-v0", "toy_dataset_env:ToyEnv", "classification")
    try:
        assert "toy-ds" in discover_datasets()
        row = next(r for r in dataset_status(tmp_path, checksums=False) if r.name == "toy-ds")
        assert row.state == "missing" and "toy.zip" in row.detail
    finally:
        metabench.registry.remove(spec.id)
