"""The manifest of a resumable folder run (napari_segrefiner.cli.manifest): an append-only journal
folded into a JSON file; an output counts as the run's own only while its file is the one recorded."""

from __future__ import annotations

import json

from napari_segrefiner.cli.manifest import JOURNAL, MANIFEST, Manifest, file_id, model_id


def test_the_manifest_journal_records_outputs_before_they_are_placed_and_survives_a_kill(tmp_path):
    mask, out = tmp_path / "m.png", tmp_path / "o.png"
    mask.write_bytes(b"coarse")
    out.write_bytes(b"refined")
    first = Manifest(tmp_path / MANIFEST, {"seed": 1})
    first.record("o.png", {"mask": mask}, file_id(out))
    first.record("x.png", {"mask": mask}, {"size": 1, "sha256": "0"})
    first.forget("x.png")  # its file could not be put in place
    assert not (tmp_path / MANIFEST).exists()  # killed here: only the journal holds the records
    with open(tmp_path / JOURNAL, "a") as fh:
        fh.write('{"name": "torn", "ent')  # the last line was being written
    again = Manifest(tmp_path / MANIFEST, {"seed": 1})
    assert set(again.entries) == {"o.png"} and again.status("o.png", out, {"mask": mask}) == "done"
    assert Manifest(tmp_path / MANIFEST, {"seed": 2}).status("o.png", out, {"mask": mask}) is None  # other settings
    again.save()
    assert not (tmp_path / JOURNAL).exists()
    assert set(json.loads((tmp_path / MANIFEST).read_text())["outputs"]) == {"o.png"}
    out.write_bytes(b"edited by hand")
    assert again.status("o.png", out, {"mask": mask}) is None  # no longer the file it wrote


def test_file_id_is_the_size_and_sha256_and_model_id_names_the_shipped_model(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_id(path) == {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
    assert model_id(None) == model_id("segrefiner-lite")  # None is the shipped default
    assert model_id("segrefiner-lite") != model_id("segrefiner-lr")
