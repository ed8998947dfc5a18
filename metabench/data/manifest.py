"""The dataset manifest: which files each dataset needs, their checksums and where to get them.

``DATASETS`` maps a dataset name to its ``DatasetInfo``. Other modules (or users) add
entries with ``register_dataset``. Building the table touches no file and no network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from metabench.errors import RegistrationError, UnknownIdError


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name under the dataset's directory, where to fetch it, checksums.

    ``url`` is ``None`` when the file cannot be downloaded automatically (the dataset's
    ``instructions`` say how to get it).
    """

    name: str
    url: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A dataset: its directory (``data_root()/subdir``), its files and how to get them.

    Attributes:
        name: the dataset name used by ``metabench data status/prepare``.
        subdir: directory under the data root.
        files: every file the dataset may use.
        instructions: how to obtain the files by hand (shown in error messages).
        alternatives: other accepted forms, in words (e.g. an already-extracted folder).
        variants: ``(variant, file names)`` pairs for datasets usable in several forms (e.g.
            Omniglot "full" needs the two full zips, "lite" the two small subsets); empty means
            one variant needing every file.
        prepare_ids: ``(variant, env id)`` pairs: building that env builds the variant's cache.
    """

    name: str
    subdir: str
    files: tuple[RemoteFile, ...]
    instructions: str = ""
    alternatives: tuple[str, ...] = ()
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    prepare_ids: tuple[tuple[str, str], ...] = ()

    def file(self, name: str) -> RemoteFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no file {name!r}; files: {', '.join(f.name for f in self.files)}")

    def variant_files(self) -> dict[str, tuple[RemoteFile, ...]]:
        """``{variant: files}``; a dataset without variants has one variant named ``""``."""
        if not self.variants:
            return {"": self.files}
        return {v: tuple(self.file(n) for n in names) for v, names in self.variants}


_OMNIGLOT_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{}"

OMNIGLOT = DatasetInfo(
    name="omniglot",
    subdir="omniglot",
    files=(
        RemoteFile(
            "images_background.zip",
            _OMNIGLOT_URL.format("images_background.zip"),
            md5="68d2efa1b9178cc56df9314c21c6e718",
        ),
        RemoteFile(
            "images_evaluation.zip",
            _OMNIGLOT_URL.format("images_evaluation.zip"),
            md5="6b91aef0f799c5bb55b94e3f2daec811",
        ),
        RemoteFile(
            "images_background_small1.zip",
            _OMNIGLOT_URL.format("images_background_small1.zip"),
            sha256="f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
        ),
        RemoteFile(
            "images_background_small2.zip",
            _OMNIGLOT_URL.format("images_background_small2.zip"),
            sha256="3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
        ),
    ),
    instructions=(
        "Download the zips from https://github.com/brendenlake/omniglot/tree/master/python "
        "(images_background.zip and images_evaluation.zip for the full dataset, "
        "images_background_small1.zip and images_background_small2.zip for omniglot-lite) "
        "and put them, unextracted, in <data root>/omniglot/ (the data root is the root= argument, "
        "else $METABENCH_DATA, else ~/.local/share/metabench). Or pass download=True to make()."
    ),
    alternatives=(
        "already-extracted folders <data root>/omniglot/images_background/<Alphabet>/characterNN/*.png "
        "(same for images_evaluation, images_background_small1, images_background_small2)",
    ),
    variants=(
        ("full", ("images_background.zip", "images_evaluation.zip")),
        ("lite", ("images_background_small1.zip", "images_background_small2.zip")),
    ),
    prepare_ids=(("full", "omniglot-5w1s"), ("lite", "omniglot-lite-5w1s")),
)

DATASETS: dict[str, DatasetInfo] = {OMNIGLOT.name: OMNIGLOT}


def register_dataset(info: DatasetInfo, *, override: bool = False) -> DatasetInfo:
    """Add ``info`` to ``DATASETS`` (``override=True`` to replace an existing entry)."""
    if info.name in DATASETS and not override and DATASETS[info.name] != info:
        raise RegistrationError(f"dataset {info.name!r} is already registered; pass override=True to replace it")
    DATASETS[info.name] = info
    return info


def dataset_info(name: str) -> DatasetInfo:
    """The registered ``DatasetInfo`` of ``name``."""
    try:
        return DATASETS[name]
    except KeyError:
        from metabench.registry import did_you_mean

        raise UnknownIdError(
            f"unknown dataset {name!r}.{did_you_mean(name, sorted(DATASETS))} "
            f"Registered datasets: {', '.join(sorted(DATASETS))}."
        ) from None


def datasets() -> Mapping[str, DatasetInfo]:
    """A read-only view of the dataset table."""
    return MappingProxyType(DATASETS)
