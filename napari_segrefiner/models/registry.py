"""Named models: the shipped default and the authors' released checkpoints.

Nothing is downloaded unless :func:`fetch` is called explicitly. Downloads are verified by
SHA-256 and cached in :func:`cache_dir` (``$NAPARI_SEGREFINER_CACHE`` or the platform's user
cache folder), or in a folder the caller passes. A cached file is verified again the first
time a process loads it (:func:`verify_download`), so a truncated or replaced file is caught
before it is used; files without a published digest (``segrefiner-hr``) cannot be verified.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["ModelInfo", "MODELS", "DEFAULT_MODEL", "cache_dir", "resolve", "fetch", "sha256sum", "verify_download"]

DEFAULT_MODEL = "segrefiner-lite"
_CACHE_ENV = "NAPARI_SEGREFINER_CACHE"


@dataclass(frozen=True)
class ModelInfo:
    """A registered model.

    Attributes
    ----------
    name : str
        Registry name.
    description : str
        One line for menus.
    filename : str
        File name in the cache (or in the package for shipped models).
    url : str or None
        Download address (None for shipped models).
    sha256 : str or None
        Expected digest (of the shipped file too); None when the authors never published one.
    shipped : bool
        True if the weights are inside the package.
    options : tuple of (str, value) pairs
        :class:`~napari_segrefiner.models.config.RefineConfig` options that the released file
        does not store but this model needs (applied by ``load_refiner`` when it is loaded
        by name); our own checkpoints store theirs.
    """

    name: str
    description: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    shipped: bool = False
    options: tuple[tuple[str, Any], ...] = ()


_GDRIVE = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"

MODELS: dict[str, ModelInfo] = {
    "segrefiner-lite": ModelInfo(
        "segrefiner-lite",
        "Shipped default (v3): frozen ImageNet EfficientNet-Lite0 encoder + a decoder trained by this project",
        "segrefiner-lite.pt",
        sha256="ff1dec4c380b1349685ceca02e9200534eddbc75f742d2fd3824daca4bdb946f",
        shipped=True,
    ),
    "segrefiner-lite-v2": ModelInfo(
        "segrefiner-lite-v2",
        "Shipped previous default (v2): from-scratch Lite denoiser, 4.3 M parameters, no pretrained parts",
        "segrefiner-lite-v2.pt",
        sha256="07cecda8acdb892212b662ee907968d3b6e0e9f6e9b83a921e190ea922ded221",
        shipped=True,
    ),
    "segrefiner-lr": ModelInfo(
        "segrefiner-lr",
        "Official LR-SegRefiner (LVIS object crops; 118.6 M parameters, 475 MB download)",
        "segrefiner_lr_latest.pth",
        url=_GDRIVE.format("1FrhbdwNyTlQYNbF9IgFF2tY3iQXHFcau"),
        sha256="d5806a41a4bff6f1e313d1a9dcf18d11dab28e3a8e1497871a156214cd8fe07a",
        options=(("auto_hr_side", 0),),  # trained on object crops: "auto" never picks the HR pipeline
    ),
    "segrefiner-hr": ModelInfo(
        "segrefiner-hr",
        "Official HR-SegRefiner (DIS5K + ThinObject-5K; 118.6 M parameters, ~475 MB download)",
        "segrefiner_hr_latest.pth",
        url=_GDRIVE.format("143kerk4WOerGZMqR-cAETb7rOcoQ0CQ_"),
        sha256=None,
    ),
}


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Folder for downloaded weights.

    Parameters
    ----------
    override : str or path-like, optional
        Use this folder instead.

    Returns
    -------
    Path
        ``override``, else ``$NAPARI_SEGREFINER_CACHE``, else the user cache folder
        (``~/.cache/napari-segrefiner`` on Linux). The folder is not created here.
    """
    if override:
        return Path(override).expanduser()
    env = os.environ.get(_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "napari-segrefiner"


def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# Files whose digest matched in this process, keyed by (path, inode, size, mtime, ctime):
# a cached download is hashed the first time it is used, not on every load.
_VERIFIED: set[tuple[str, int, int, int, int]] = set()


def _stamp(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _digest_matches(path: Path, sha256: str) -> bool:
    """True if ``path`` has digest ``sha256`` (hashed once per process while unchanged)."""
    stamp = _stamp(path)
    if stamp in _VERIFIED:
        return True
    if sha256sum(path) != sha256:
        return False
    _VERIFIED.add(stamp)
    return True


def verify_download(name: str, path: str | os.PathLike) -> Path:
    """Check a cached file of a registered model against its published SHA-256.

    The file is hashed the first time it is used in a process (and again only if it
    changes). Shipped files are checked the same way (a damaged installation is caught);
    only models without a published digest (``segrefiner-hr``) cannot be checked.

    Parameters
    ----------
    name : str
        Registry name.
    path : str or path-like
        The cached file (as :func:`resolve` found it).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CheckpointError
        If the digest differs; the message says how to download the file again, or how to
        use it anyway.
    """
    info = MODELS[name]
    path = Path(path)
    if info.sha256 is None or _digest_matches(path, info.sha256):
        return path
    from .checkpoint import CheckpointError

    if info.shipped:
        raise CheckpointError(
            f"{path} does not match the SHA-256 of the shipped model {name!r}: the installation is damaged "
            "or the file was replaced; reinstall napari-segrefiner"
        )
    raise CheckpointError(
        f"{path} does not match the published SHA-256 of {name!r} (an interrupted download or a changed "
        f"file): delete it and run `napari-segrefiner download {name}` (or napari_segrefiner.models.registry.fetch"
        f"({name!r})) to download it again, or pass the file's path as a checkpoint (model={str(path)!r}, "
        "CLI --checkpoint) to use it unverified"
    )


def _shipped_path(info: ModelInfo) -> Path:
    return Path(str(resources.files("napari_segrefiner") / "weights" / info.filename))


def resolve(name: str, *, cache: str | os.PathLike | None = None, verify: bool = False) -> Path:
    """Local file of a registered model, without downloading.

    Parameters
    ----------
    name : str
        Registry name.
    cache : str or path-like, optional
        Cache folder (see :func:`cache_dir`).
    verify : bool
        Check a downloaded file against its published SHA-256 (see :func:`verify_download`); the
        loaders do, a mere "is it there?" does not.

    Raises
    ------
    KeyError
        If ``name`` is not registered.
    FileNotFoundError
        If the weights are not present (with the command that fetches them).
    CheckpointError
        With ``verify=True``, if the file's digest differs from the published one.
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(MODELS)}")
    info = MODELS[name]
    if info.shipped:
        path = _shipped_path(info)
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped model {name!r} is missing from this installation ({path}); "
                "pass a checkpoint file instead (model='path/to/weights.pt')"
            )
        return verify_download(name, path) if verify else path
    path = cache_dir(cache) / info.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"model {name!r} is not downloaded (looked in {path.parent}). Download it explicitly with "
            f"`napari-segrefiner download {name}` or napari_segrefiner.models.registry.fetch({name!r}), "
            "or pass the checkpoint file's path"
        )
    return verify_download(name, path) if verify else path


def fetch(
    name: str,
    *,
    cache: str | os.PathLike | None = None,
    progressbar: Any = False,
    trust_unknown_hash: bool = False,
) -> Path:
    """Download a registered model (if not cached), verify its SHA-256 and return its path.

    Parameters
    ----------
    name : str
        Registry name.
    cache : str or path-like, optional
        Cache folder (see :func:`cache_dir`).
    progressbar : bool or tqdm-like, optional
        Passed to pooch (napari's ``progress`` works).
    trust_unknown_hash : bool
        The authors published no digest for some files (``segrefiner-hr``); they are only
        downloaded when this is True, and the digest is then printed so it can be pinned.

    Raises
    ------
    ValueError
        If the file's digest does not match, or its digest is unknown and not trusted.
    """
    info = MODELS.get(name)
    if info is None:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(MODELS)}")
    if info.shipped:
        return resolve(name)
    folder = cache_dir(cache)
    path = folder / info.filename
    if path.is_file() and info.sha256 and _digest_matches(path, info.sha256):
        return path
    if info.sha256 is None and not trust_unknown_hash:
        raise ValueError(
            f"no published SHA-256 exists for {name!r}; pass trust_unknown_hash=True "
            "(CLI: --trust-unknown-hash) to download it anyway"
        )
    try:
        import pooch
    except ImportError:  # pragma: no cover - pooch is a dependency
        raise ImportError("downloading needs pooch: pip install pooch") from None
    folder.mkdir(parents=True, exist_ok=True)
    known = f"sha256:{info.sha256}" if info.sha256 else None
    got = pooch.retrieve(info.url, known_hash=known, fname=info.filename, path=folder, progressbar=progressbar)
    if info.sha256 is not None and Path(got).is_file():
        _VERIFIED.add(_stamp(Path(got)))  # pooch checked the digest
    if info.sha256 is None:
        log.warning("%s: downloaded without a published digest; sha256=%s (pin it)", name, sha256sum(got))
    return Path(got)
