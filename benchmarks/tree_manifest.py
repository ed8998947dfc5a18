"""Verify that a copy of a checkout without its ``.git`` is exactly a committed revision.

``write`` (in the checkout): records HEAD and the git blob hash of every tracked file.
``check`` (in the copy): recomputes each file's blob hash (sha1 of ``"blob <size>\\0" + bytes``,
git's own object id) and prints the revision if all match, else lists the mismatches and
exits 1. A launcher then sets ``METABENCH_GIT_REVISION`` so results made on the copy record
the revision they ran (``metabench.harness.provenance.code_version``).

    python benchmarks/tree_manifest.py write .device/manifest.json
    rev=$(python benchmarks/tree_manifest.py check .device/manifest.json) && export METABENCH_GIT_REVISION=$rev
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path


def blob_id(data: bytes) -> str:
    """Git's object id of a file's bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write(path: Path, root: Path = Path(".")) -> dict:
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, check=True).stdout
    if status.strip():
        raise SystemExit(f"uncommitted changes to tracked files; commit first:\n{status}")
    rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    files = {}
    for line in subprocess.run(["git", "-C", str(root), "ls-files", "-s"], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        meta, name = line.split("\t", 1)
        mode, oid, _ = meta.split()
        if mode != "160000":  # submodules have no blob
            files[name] = oid
    manifest = {"revision": rev, "files": files}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return manifest


def check(path: Path, root: Path = Path(".")) -> list[str]:
    """Names of tracked files that are missing or differ from the manifest's revision."""
    manifest = json.loads(path.read_text())
    bad = []
    for name, oid in manifest["files"].items():
        f = root / name
        if f.is_symlink():
            data = str(f.readlink()).encode()
        elif f.is_file():
            data = f.read_bytes()
        else:
            bad.append(f"{name} (missing)")
            continue
        if blob_id(data) != oid:
            bad.append(name)
    return bad


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("write", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    if argv[0] == "write":
        print(write(path)["revision"])
        return 0
    bad = check(path)
    if bad:
        print(f"{len(bad)} tracked files differ from the manifest's revision: {', '.join(bad[:20])}", file=sys.stderr)
        return 1
    print(json.loads(path.read_text())["revision"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
