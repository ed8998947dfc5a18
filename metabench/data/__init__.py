"""Offline-first data utilities shared by every image dataset.

- ``data_root`` / ``cache_dir``: where datasets and preprocessed caches live.
- ``file_digest`` / ``verify_file``: checksums.
- ``RemoteFile`` / ``DatasetInfo`` / ``DATASETS`` / ``register_dataset`` / ``dataset_info``: the manifest.
- ``download``: resumable, verified HTTP download (urllib).
- ``safe_extract``: zip/tar extraction that refuses members escaping the target.
- ``load_or_build``: memory-mapped preprocessed cache keyed by source content + settings.
- ``dataset_status`` / ``format_status`` / ``prepare``: ``metabench data status|prepare``.

Importing this package touches no file and no network.
"""

from __future__ import annotations

from metabench.data.cache import (
    CacheInfo,
    compilation_cache_from_env,
    data_hash_of,
    enable_compilation_cache,
    load_or_build,
    source_hash,
    verify_cache,
)
from metabench.data.checksum import file_digest, verify_file
from metabench.data.download import download
from metabench.data.extract import safe_extract
from metabench.data.manifest import DATASETS, DatasetInfo, RemoteFile, dataset_info, datasets, register_dataset
from metabench.data.root import cache_dir, data_root
from metabench.data.status import DatasetStatus, dataset_status, discover_datasets, extracted_dir, fetch, format_status, prepare
from metabench.errors import ChecksumError, DataError, UnsafeArchiveError

__all__ = [
    "DATASETS",
    "CacheInfo",
    "ChecksumError",
    "DataError",
    "DatasetInfo",
    "DatasetStatus",
    "RemoteFile",
    "UnsafeArchiveError",
    "cache_dir",
    "data_hash_of",
    "data_root",
    "dataset_info",
    "dataset_status",
    "discover_datasets",
    "datasets",
    "download",
    "compilation_cache_from_env",
    "enable_compilation_cache",
    "extracted_dir",
    "fetch",
    "file_digest",
    "format_status",
    "load_or_build",
    "prepare",
    "register_dataset",
    "safe_extract",
    "source_hash",
    "verify_cache",
    "verify_file",
]
