"""Every manifest entry of the golden directory is of a kind these tests check."""

from __future__ import annotations

from conftest import load_manifest


def test_every_voice_manifest_entry_has_a_known_kind(golden):
    manifest = load_manifest("manifest.json")
    assert manifest, "manifest.json is missing or empty"
    unknown = [k for k, v in manifest.items() if "version" not in v and "architecture" not in v]
    assert not unknown, f"manifest entries no test checks: {unknown}"
    for name in manifest:
        assert (golden / name).exists(), f"manifest names {name}, which is not in {golden}"
