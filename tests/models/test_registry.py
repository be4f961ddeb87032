"""Tests for the model registry (napari_segrefiner.models.registry). No network access.

Downloads are simulated by replacing pooch's downloader (``pooch.core.choose_downloader``)
with one that writes known bytes, so pooch's REAL hash verification runs on them.

Expected digests are the published SHA-256 test vectors (FIPS 180-2), written out here,
not computed with hashlib:
    ""        -> e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 649b934c a495991b 7852b855
    "abc"     -> ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
              -> 248d6a61 d20638b8 e5c02693 0c3e6039 a33ce459 64ff2167 f6ecedd4 19db06c1
    "a" * 10**6 -> cdc76e5c 9914fb92 81a1c7e2 84d73e67 f1809a48 a497200e 046d39cc c7112cd0
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pooch
import pooch.core
import pytest

from napari_segrefiner.models import registry
from napari_segrefiner.models.checkpoint import CheckpointError
from napari_segrefiner.models.registry import DEFAULT_MODEL, MODELS, ModelInfo, cache_dir, fetch, resolve, sha256sum

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
ABC448 = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
LR_SHA = "d5806a41a4bff6f1e313d1a9dcf18d11dab28e3a8e1497871a156214cd8fe07a"  # reference 2.1


# --------------------------------------------------------------------------- #
# entries
# --------------------------------------------------------------------------- #
def test_registry_entries():
    assert DEFAULT_MODEL == "segrefiner-lite"
    assert set(MODELS) >= {"segrefiner-lite", "segrefiner-lr", "segrefiner-hr"}
    lite, lr, hr = MODELS["segrefiner-lite"], MODELS["segrefiner-lr"], MODELS["segrefiner-hr"]
    assert lite.shipped and lite.url is None
    assert lr.sha256 == LR_SHA
    assert lr.filename == "segrefiner_lr_latest.pth" and hr.filename == "segrefiner_hr_latest.pth"
    assert not lr.shipped and not hr.shipped
    # Google Drive file ids of the README links (reference 2.1)
    assert "1FrhbdwNyTlQYNbF9IgFF2tY3iQXHFcau" in lr.url
    assert "143kerk4WOerGZMqR-cAETb7rOcoQ0CQ_" in hr.url
    assert hr.sha256 is None  # the authors never published one; the HR file was not inspected
    for info in MODELS.values():
        assert info.name in MODELS and MODELS[info.name] is info
        assert info.sha256 is None or (len(info.sha256) == 64 and int(info.sha256, 16) >= 0)


# --------------------------------------------------------------------------- #
# cache folder
# --------------------------------------------------------------------------- #
def test_cache_dir_override_env_and_default(monkeypatch, tmp_path):
    monkeypatch.delenv("NAPARI_SEGREFINER_CACHE", raising=False)
    assert cache_dir(tmp_path / "x") == tmp_path / "x"
    assert cache_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("~/weights") == tmp_path / "home" / "weights"
    monkeypatch.setenv("NAPARI_SEGREFINER_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "x") == tmp_path / "x"  # an explicit folder wins over the env var
    monkeypatch.delenv("NAPARI_SEGREFINER_CACHE")
    if os.name != "nt" and os.uname().sysname == "Linux":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cache_dir() == tmp_path / "xdg" / "napari-segrefiner"


# --------------------------------------------------------------------------- #
# resolve
# --------------------------------------------------------------------------- #
def test_resolve_missing_download_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="`napari-segrefiner download segrefiner-lr`") as exc:
        resolve("segrefiner-lr", cache=tmp_path)
    assert "fetch('segrefiner-lr')" in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_resolve_uses_env_cache_and_finds_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SEGREFINER_CACHE", str(tmp_path))
    (tmp_path / "segrefiner_hr_latest.pth").write_bytes(b"x")
    assert resolve("segrefiner-hr") == tmp_path / "segrefiner_hr_latest.pth"


def test_resolve_unknown_and_shipped(monkeypatch, tmp_path):
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        resolve("nope")
    monkeypatch.setattr(registry, "_shipped_path", lambda info: tmp_path / info.filename)
    with pytest.raises(FileNotFoundError, match="pass a checkpoint file instead"):
        resolve("segrefiner-lite")
    (tmp_path / "segrefiner-lite.pt").write_bytes(b"x")
    assert resolve("segrefiner-lite") == tmp_path / "segrefiner-lite.pt"
    assert fetch("segrefiner-lite") == tmp_path / "segrefiner-lite.pt"  # shipped: never downloads


# --------------------------------------------------------------------------- #
# fetch (simulated downloads)
# --------------------------------------------------------------------------- #
class FakeServer:
    """Stands in for pooch's HTTP downloader: serves `content` for any URL."""

    def __init__(self, content: bytes):
        self.content = content
        self.urls: list[str] = []

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        self.urls.append(url)
        Path(output_file).write_bytes(self.content)


@pytest.fixture
def server(monkeypatch):
    srv = FakeServer(b"abc")
    monkeypatch.setattr(pooch.core, "choose_downloader", lambda url, progressbar=False: srv)
    return srv


def _register(monkeypatch, sha256):
    info = ModelInfo("unit-test", "test entry", "unit.pth", url="https://example.invalid/unit.pth", sha256=sha256)
    monkeypatch.setitem(MODELS, "unit-test", info)
    return info


def test_fetch_downloads_and_verifies(monkeypatch, tmp_path, server):
    _register(monkeypatch, ABC)
    path = fetch("unit-test", cache=tmp_path / "cache")
    assert Path(path) == tmp_path / "cache" / "unit.pth"
    assert Path(path).read_bytes() == b"abc"
    assert server.urls == ["https://example.invalid/unit.pth"]
    # second call: verified cache hit, pooch is not even asked
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("pooch.retrieve called on a cache hit"))
    assert fetch("unit-test", cache=tmp_path / "cache") == tmp_path / "cache" / "unit.pth"
    assert server.urls == ["https://example.invalid/unit.pth"]


def test_fetch_rejects_a_wrong_hash(monkeypatch, tmp_path, server):
    _register(monkeypatch, EMPTY)  # the server sends b"abc", whose digest is ABC, not EMPTY
    with pytest.raises(ValueError, match="does not match the known hash"):
        fetch("unit-test", cache=tmp_path)
    assert not (tmp_path / "unit.pth").exists()  # nothing unverified is left in the cache


def test_fetch_replaces_a_corrupt_cached_file(monkeypatch, tmp_path, server):
    _register(monkeypatch, ABC)
    (tmp_path / "unit.pth").write_bytes(b"corrupt")
    assert Path(fetch("unit-test", cache=tmp_path)).read_bytes() == b"abc"
    assert len(server.urls) == 1


def test_fetch_hr_needs_trust(monkeypatch, tmp_path, server):
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(ValueError, match="no published SHA-256 exists for 'segrefiner-hr'.*trust_unknown_hash=True"):
        fetch("segrefiner-hr", cache=tmp_path)
    assert server.urls == []


def test_fetch_trusted_unknown_hash_logs_the_digest(monkeypatch, tmp_path, server, caplog):
    _register(monkeypatch, None)
    with caplog.at_level("WARNING", logger="napari_segrefiner.models.registry"):
        path = fetch("unit-test", cache=tmp_path, trust_unknown_hash=True)
    assert Path(path).read_bytes() == b"abc"
    assert f"sha256={ABC}" in caplog.text


def test_fetch_lr_passes_the_published_hash_to_pooch(monkeypatch, tmp_path):
    seen = {}

    def fake_retrieve(url, known_hash=None, fname=None, path=None, progressbar=False, **kw):
        seen.update(url=url, known_hash=known_hash, fname=fname, path=Path(path))
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    out = fetch("segrefiner-lr", cache=tmp_path)
    assert out == tmp_path / "segrefiner_lr_latest.pth"
    assert seen["known_hash"] == f"sha256:{LR_SHA}"
    assert seen["fname"] == "segrefiner_lr_latest.pth" and seen["path"] == tmp_path
    assert "1FrhbdwNyTlQYNbF9IgFF2tY3iQXHFcau" in seen["url"]


def test_fetch_unknown_name():
    with pytest.raises(KeyError, match="unknown model"):
        fetch("nope")


# --------------------------------------------------------------------------- #
# sha256sum
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "data,digest",
    [
        (b"", EMPTY),
        (b"abc", ABC),
        (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", ABC448),
    ],
)
def test_sha256sum_test_vectors(tmp_path, data, digest):
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    assert sha256sum(p) == digest
    assert sha256sum(str(p), chunk=1) == digest  # byte-by-byte chunks give the same digest


def test_sha256sum_multi_chunk(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"a" * 1_000_000)
    assert sha256sum(p, chunk=4096) == MILLION_A  # 245 chunks, the last one partial


# --------------------------------------------------------------------------- #
# cached files are verified the first time a process uses them
# --------------------------------------------------------------------------- #
@pytest.fixture
def counted_hashes(monkeypatch):
    """Count sha256sum calls, with a fresh set of verified files."""
    calls = []
    real = registry.sha256sum

    def counting(path, chunk=1 << 20):
        calls.append(Path(path))
        return real(path, chunk)

    monkeypatch.setattr(registry, "sha256sum", counting)
    monkeypatch.setattr(registry, "_VERIFIED", set())
    return calls


def test_resolve_verify_hashes_a_cached_file_once(monkeypatch, tmp_path, counted_hashes):
    _register(monkeypatch, ABC)
    (tmp_path / "unit.pth").write_bytes(b"abc")
    assert resolve("unit-test", cache=tmp_path) == tmp_path / "unit.pth"
    assert counted_hashes == []  # a plain look-up does not hash
    for _ in range(3):
        assert resolve("unit-test", cache=tmp_path, verify=True) == tmp_path / "unit.pth"
    assert len(counted_hashes) == 1
    fetch("unit-test", cache=tmp_path)  # a cache hit of fetch uses the same record
    assert len(counted_hashes) == 1


def test_resolve_verify_refuses_a_changed_file_and_says_what_to_do(monkeypatch, tmp_path, counted_hashes):
    _register(monkeypatch, ABC)
    path = tmp_path / "unit.pth"
    path.write_bytes(b"abc")
    resolve("unit-test", cache=tmp_path, verify=True)
    path.write_bytes(b"abc, then more")  # changed after it was verified: checked again
    with pytest.raises(CheckpointError) as info:
        resolve("unit-test", cache=tmp_path, verify=True)
    msg = str(info.value)
    assert "does not match the published SHA-256 of 'unit-test'" in msg
    assert "delete it and run `napari-segrefiner download unit-test`" in msg
    assert f"model={str(path)!r}" in msg and "--checkpoint" in msg
    assert len(msg.splitlines()) == 1
    assert len(counted_hashes) == 2


def test_a_model_without_a_published_digest_is_not_hashed(tmp_path, counted_hashes):
    (tmp_path / "segrefiner_hr_latest.pth").write_bytes(b"anything")
    assert resolve("segrefiner-hr", cache=tmp_path, verify=True) == tmp_path / "segrefiner_hr_latest.pth"
    assert counted_hashes == []


@pytest.mark.parametrize("name", ["segrefiner-lite", "segrefiner-lite-v2"])
def test_shipped_files_match_their_recorded_digest(name):
    path = resolve(name, verify=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MODELS[name].sha256


def test_a_damaged_shipped_file_is_refused(monkeypatch, tmp_path):
    shipped = resolve("segrefiner-lite")
    damaged = tmp_path / shipped.name
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(registry, "_shipped_path", lambda info: tmp_path / info.filename)
    assert resolve("segrefiner-lite") == damaged  # "is it there?" does not hash
    with pytest.raises(CheckpointError, match="installation is damaged"):
        resolve("segrefiner-lite", verify=True)


def test_loading_a_registered_name_verifies_the_cached_file(monkeypatch, tmp_path, tiny_checkpoint, counted_hashes):
    from napari_segrefiner.models.refiner import load_refiner

    data = tiny_checkpoint.read_bytes()
    _register(monkeypatch, hashlib.sha256(data).hexdigest())  # a digest to pin, not a test of sha256sum
    (tmp_path / "unit.pth").write_bytes(data)
    assert load_refiner("unit-test", device="cpu", cache=tmp_path).source == "unit-test"
    assert load_refiner("unit-test", device="cpu", cache=tmp_path).source == "unit-test"
    assert len(counted_hashes) == 1  # hashed once per process
    (tmp_path / "unit.pth").write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(CheckpointError, match="napari-segrefiner download unit-test"):
        load_refiner("unit-test", device="cpu", cache=tmp_path)
    # the way out the message names: the file as a checkpoint (here: it is broken too)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_refiner(str(tmp_path / "unit.pth"), device="cpu")


def test_cli_refine_reports_a_mismatch_in_one_line(monkeypatch, tmp_path, tiny_checkpoint, counted_hashes, capsys):
    from napari_segrefiner.cli.main import main

    _register(monkeypatch, ABC)
    monkeypatch.setenv("NAPARI_SEGREFINER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "unit.pth").write_bytes(tiny_checkpoint.read_bytes())  # not b"abc"
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "img.tif", np.zeros((32, 32), np.uint8))
    tifffile.imwrite(tmp_path / "mask.tif", np.pad(np.ones((8, 8), np.uint8), 12))
    code = main(
        [
            "refine",
            str(tmp_path / "img.tif"),
            str(tmp_path / "mask.tif"),
            "-o",
            str(tmp_path / "o.tif"),
            "--model",
            "unit-test",
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "napari-segrefiner download unit-test" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.tif").exists()


def test_cli_models_says_which_hashes_are_unknown(capsys):
    from napari_segrefiner.cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    hr = out[out.index("segrefiner-hr") :]
    assert "SHA-256 unknown" in hr and "unverified" in hr
    lr = out[out.index("segrefiner-lr") : out.index("segrefiner-hr")]
    assert LR_SHA[:16] in lr and "verified when first loaded" in lr
