"""Pinned Debian packages as data: download one ``.deb`` by name and version, check its sha256,
and read files out of it, without root and without ``dpkg``.

A :class:`DebPackage` names the package, the exact version, the file's path in the Debian archive
(``pool/main/...``) and its sha256. :func:`fetch_deb` gets it with the ordinary client,
``apt-get download NAME=VERSION`` (works without root where apt's lists are current), and
falls back to an HTTP GET of the pool path on the Debian mirror (``deb.debian.org``, or
``$SPARSEBERT_DEBIAN_MIRROR``) where apt is missing or no longer lists that version. Either way the
file is accepted only if its sha256 is the pinned one.

:func:`deb_members` reads a ``.deb`` (an ``ar`` archive holding ``data.tar.{xz,gz,zst,bz2}``)
with the standard library alone.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sparsebert.errors import InputError

__all__ = ["DebPackage", "DebFetchError", "fetch_deb", "deb_members", "sha256_file"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"


class DebFetchError(InputError):
    """A pinned package could not be downloaded, or its checksum or layout is not the pinned one;
    the message names the package, version and file."""


@dataclass(frozen=True)
class DebPackage:
    """One pinned Debian package.

    Attributes:
        name: package name (``"dict-gcide"``).
        version: exact Debian version, epoch included (``"1:3.0-37"``).
        pool_path: path in the archive, relative to the mirror root
            (``"pool/main/d/dict-gcide/dict-gcide_0.48.5+nmu2_all.deb"``).
        sha256: hex sha256 of the ``.deb`` (as in the archive's ``Packages`` index).
        size: size in bytes.
    """

    name: str
    version: str
    pool_path: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return self.pool_path.rsplit("/", 1)[-1]

    def url(self, mirror: str | None = None) -> str:
        """The package's address on ``mirror`` (default: ``$SPARSEBERT_DEBIAN_MIRROR`` or deb.debian.org)."""
        mirror = (mirror or os.environ.get("SPARSEBERT_DEBIAN_MIRROR") or DEFAULT_MIRROR).rstrip("/")
        return f"{mirror}/{self.pool_path.replace('+', '%2b')}"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _apt_download(pkg: DebPackage, workdir: Path) -> Path | None:
    """``apt-get download NAME=VERSION`` into ``workdir``; the file, or None when apt cannot."""
    if shutil.which("apt-get") is None:
        return None
    try:
        subprocess.run(["apt-get", "download", "-q", f"{pkg.name}={pkg.version}"], cwd=workdir,
                       check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError):
        return None
    found = sorted(workdir.glob(f"{pkg.name}_*.deb"))
    return found[0] if found else None


def _http_download(pkg: DebPackage, workdir: Path) -> Path:
    url = pkg.url()
    dest = workdir / pkg.filename
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, open(dest, "wb") as f:
            shutil.copyfileobj(resp, f)
    except OSError as err:
        raise DebFetchError(f"{pkg.name}={pkg.version}: download of {url} failed: {err}. apt-get could "
                            f"not get it either; set SPARSEBERT_DEBIAN_MIRROR to a reachable Debian mirror, "
                            f"or put {pkg.filename} (sha256 {pkg.sha256}) into the download folder") from err
    return dest


def fetch_deb(pkg: DebPackage, cache_dir: str | Path) -> Path:
    """The verified ``.deb`` of ``pkg`` in ``cache_dir``, downloading it when absent.

    A file already there is re-checked and reused. A download lands in a temporary folder
    inside ``cache_dir`` and is moved into place only after its sha256 matched.

    Returns:
        ``cache_dir / pkg.filename``.

    Raises:
        DebFetchError: neither apt-get nor the mirror gave the file, or its sha256 differs from
            the pinned one (the message gives both).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / pkg.filename
    if dest.is_file():
        got = sha256_file(dest)
        if got == pkg.sha256:
            return dest
        dest.unlink()  # a stale or corrupt copy: fetch again
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir) as tmp:
        path = _apt_download(pkg, Path(tmp)) or _http_download(pkg, Path(tmp))
        got = sha256_file(path)
        if got != pkg.sha256:
            raise DebFetchError(f"{pkg.name}={pkg.version}: {path.name} has sha256 {got}, expected the pinned "
                                f"{pkg.sha256}; not used")
        os.replace(path, dest)
    return dest


def _ar_members(blob: bytes, where: str) -> dict[str, bytes]:
    if not blob.startswith(b"!<arch>\n"):
        raise DebFetchError(f"{where}: not a Debian package (no ar header)")
    pos, out = 8, {}
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        out[name] = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    return out


def deb_members(deb: str | Path, wanted) -> dict[str, bytes]:
    """The contents of files in a ``.deb``'s data archive.

    Args:
        deb: the ``.deb`` file.
        wanted: a predicate on the member path as packed, without the leading ``./``
            (``"usr/share/dictd/gcide.index"``), saying which regular files to return.

    Returns:
        ``{member path: bytes}`` for every regular file ``wanted`` accepts.

    Raises:
        DebFetchError: not an ar archive, or no ``data.tar.*`` member, naming the file.
    """
    where = str(deb)
    members = _ar_members(Path(deb).read_bytes(), where)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise DebFetchError(f"{where}: no data.tar.* member (members: {sorted(members)})")
    payload = members[data_name]
    if data_name.endswith(".zst"):
        try:
            import zstandard
        except ImportError as err:
            raise DebFetchError(f"{where}: data.tar.zst needs the zstandard module") from err
        payload = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as tar:
        for info in tar:
            name = info.name[2:] if info.name.startswith("./") else info.name
            if info.isfile() and wanted(name):
                out[name] = tar.extractfile(info).read()
    return out
