"""Malformed bundles are refused whole, with a clear message, and nothing is written: no tool row, no
file in the data folder (models, images), no staging folder left behind."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hyp

from core.audit import SYSTEM, Actor
from core.auth.roles import Role
from core.bundle import reader
from core.bundle.import_ import import_bundle
from core.bundle.signing import generate_key_pair
from core.errors import StudioError
from core.studio import Studio
from core.tools import create_tool, list_tools

ME = Actor("ines", "pc-7", Role.ENGINEER)
Members = dict[str, bytes]


def files_of(studio: Studio) -> set[str]:
    root = studio.settings.data_dir
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith("studio.db")}


def read_members(path: Path) -> Members:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write(path: Path, members: Members, extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for info, data in extra:
            archive.writestr(info, data)
    return path


def rehash(members: Members) -> Members:
    """The manifest rewritten to list the files as they now are (what a forger without the key would do)."""
    manifest = json.loads(members["manifest.json"])
    manifest["files"] = [{"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                         for name, data in members.items() if name not in ("manifest.json", "manifest.sig")]
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def model_file(members: Members, suffix: str) -> str:
    return next(n for n in members if n.startswith("models/") and n.endswith(suffix))


def flip_byte(members: Members) -> Members:
    name = model_file(members, "weights.safetensors")
    data = bytearray(members[name])
    data[len(data) // 2] ^= 0x01
    return {**members, name: bytes(data)}


def manifest_field(key: str, value: object) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        manifest = json.loads(members["manifest.json"])
        manifest[key] = value
        return {**members, "manifest.json": json.dumps(manifest).encode()}

    return change


def without(name_of: Callable[[Members], str]) -> Callable[[Members], Members]:
    return lambda members: {n: d for n, d in members.items() if n != name_of(members)}


def plus(name: str) -> Callable[[Members], Members]:
    return lambda members: {**members, name: b"hello"}


def garbage_weights(members: Members) -> Members:
    return rehash({**members, model_file(members, "weights.safetensors"): b"\x00" * 64})


def bad_tool_json(members: Members) -> Members:
    tool = json.loads(members["tool.json"])
    tool["settings"] = {"policy": "whatever"}
    return rehash({**members, "tool.json": json.dumps(tool).encode()})


CASES: dict[str, tuple[Callable[[Members], Members], str]] = {
    "changed byte": (flip_byte, "does not match its SHA-256"),
    "unknown format version": (manifest_field("format_version", 99), "format version 99 is unknown"),
    "not a bundle's manifest": (manifest_field("format", "something-else"), "does not describe a tool bundle"),
    "malformed manifest": (lambda m: {**m, "manifest.json": b"{not json"}, "manifest.json is not valid JSON"),
    "manifest without files": (manifest_field("files", "all of them"), "no list of files"),
    "unsafe name in the manifest": (manifest_field("files", [{"path": "../x", "sha256": "0" * 64, "size": 1}]),
                                    "unsafe file name"),
    "missing manifest": (without(lambda m: "manifest.json"), "no manifest.json"),
    "missing file": (without(lambda m: model_file(m, "model.json")), "listed in the manifest but missing"),
    "extra file": (plus("notes.txt"), "notes.txt is not in the manifest"),
    "dot-dot member": (plus("../evil.txt"), "unsafe path"),
    "absolute member": (plus("/etc/evil.txt"), "unsafe path"),
    "model that does not load": (garbage_weights, "cannot be loaded"),
    "malformed tool.json": (bad_tool_json, "tool.json is malformed"),
    "stray file under models": (lambda m: rehash({**m, "models/999/x.bin": b"x"}), "belongs to no model version"),
    "runtime graph in a model": (lambda m: rehash({**m, model_file(m, "model.json").replace("model.json",
                                                                                            "runtime-1.onnx"): b"x"}),
                                 "is a runtime graph"),
}


def assert_refused(station: Studio, bundle: Path, match: str, **options: object) -> None:
    before, tools = files_of(station), list_tools(station)
    with pytest.raises(StudioError, match=match):
        import_bundle(station, bundle, ME, **options)
    assert list_tools(station) == tools
    assert files_of(station) == before
    assert not list(station.settings.data_dir.glob("**/.bundle-*"))


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_bundle_is_refused_and_nothing_is_written(case: str, station: Studio, bundles: dict[str, Path],
                                                              tmp_path: Path) -> None:
    change, message = CASES[case]
    bundle = write(tmp_path / "bad.zip", change(read_members(bundles["plain"])))
    assert_refused(station, bundle, message)


def test_a_symbolic_link_is_refused(station: Studio, bundles: dict[str, Path], tmp_path: Path) -> None:
    link = zipfile.ZipInfo("models/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bundle = write(tmp_path / "link.zip", read_members(bundles["plain"]), [(link, b"/etc/passwd")])
    assert_refused(station, bundle, "symbolic link")


def test_a_folder_entry_outside_the_manifest_is_refused(station: Studio, bundles: dict[str, Path],
                                                        tmp_path: Path) -> None:
    bundle = write(tmp_path / "dir.zip", read_members(bundles["plain"]), [(zipfile.ZipInfo("../up/"), b"")])
    assert_refused(station, bundle, "not in its manifest")


@pytest.mark.parametrize("limit, message", [("MAX_MEMBER_BYTES", "larger than"), ("MAX_BUNDLE_BYTES", "expands to")])
def test_oversized_members_and_bundles_are_refused(limit: str, message: str, station: Studio,
                                                   bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, limit, 4096)
    assert_refused(station, bundles["plain"], message)


def test_a_damaged_zip_is_refused(station: Studio, bundles: dict[str, Path], tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bundles["plain"].read_bytes()[:-200])
    assert_refused(station, damaged, "damaged")


def test_an_existing_name_is_refused_without_as(station: Studio, bundles: dict[str, Path]) -> None:
    create_tool(station, "solar-cell", "good,defective", actor=SYSTEM)
    assert_refused(station, bundles["plain"], "exists already")
    assert [t.name for t in list_tools(station)] == ["solar-cell"] and not list_tools(station)[0].trained


# --- signatures ------------------------------------------------------------------------------------
def test_a_signed_bundle_verifies_against_the_trusted_key(station: Studio, bundles: dict[str, Path], keys) -> None:
    pair, trusted = keys
    result = import_bundle(station, bundles["signed"], ME, trusted_keys_dir=trusted, require_signature=True)
    assert result.signature == f"signed by key {pair.fingerprint} (trusted)"


def test_an_unsigned_bundle_is_refused_when_a_signature_is_required(station: Studio, bundles: dict[str, Path],
                                                                    keys, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_refused(station, bundles["plain"], "not signed", trusted_keys_dir=keys[1], require_signature=True)
    monkeypatch.setenv("STUDIO_REQUIRE_SIGNED_BUNDLES", "1")  # the studio-wide setting
    assert_refused(station, bundles["plain"], "not signed", trusted_keys_dir=keys[1])


def test_a_key_this_station_does_not_trust_is_refused_when_required(station: Studio, bundles: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    other = tmp_path / "other-trusted"
    generate_key_pair(tmp_path / "other", "someone")
    other.mkdir()
    shutil.copy(tmp_path / "other" / "someone.pub", other)
    assert_refused(station, bundles["signed"], "not among the trusted keys", trusted_keys_dir=other,
                   require_signature=True)
    # not required: imported, and the result says whose key it was
    assert "not a trusted key" in import_bundle(station, bundles["signed"], ME, trusted_keys_dir=other).signature


@pytest.mark.parametrize("tamper, message", [
    (lambda m: {**m, "manifest.json": m["manifest.json"].replace(b'"studio_version": "', b'"studio_version": "9')},
     "does not match the manifest"),
    (lambda m: rehash(flip_byte(m)), "does not match the manifest"),  # a forger re-hashed a changed model
    (lambda m: {**m, "manifest.sig": m["manifest.sig"].replace(b'"signature": "', b'"signature": "AAAA')},
     "does not match the manifest|malformed"),
    (lambda m: {**m, "manifest.sig": b"not json"}, "manifest.sig is malformed"),
])
def test_a_tampered_signed_bundle_is_refused_even_when_not_required(tamper, message: str, station: Studio,
                                                                    bundles: dict[str, Path], keys,
                                                                    tmp_path: Path) -> None:
    bundle = write(tmp_path / "tampered.zip", tamper(read_members(bundles["signed"])))
    assert_refused(station, bundle, message, trusted_keys_dir=keys[1])


def test_a_dataset_the_station_refuses_undoes_the_whole_import(station: Studio, bundles: dict[str, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from core import images
    from core.audit import audit_log
    from core.line.recipes import list_recipes

    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)  # this station accepts no image of the dataset
    with pytest.raises(StudioError, match="the dataset could not be imported, so nothing was imported"):
        import_bundle(station, bundles["images"], ME)
    assert list_tools(station) == [] and list_recipes(station, "line-1") == []
    assert not [p for p in station.settings.models_dir.rglob("*") if p.is_file()]
    assert [e.action for e in audit_log(station)][:2] == ["bundle_import_undone", "bundle_import"]


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=hyp.data())
def test_any_changed_byte_of_the_zip_is_refused_or_changes_no_content(data: hyp.DataObject,
                                                                      bundles: dict[str, Path]) -> None:
    """A byte flipped anywhere in the file (headers, names, content, central directory) is refused with a
    message, or it changed nothing a bundle holds (a timestamp, say): never a traceback, never other bytes."""
    original = bundles["signed"].read_bytes()
    position = data.draw(hyp.integers(0, len(original) - 1))
    changed = bytearray(original)
    changed[position] ^= data.draw(hyp.integers(1, 255))
    try:
        bundle = reader.open_bundle(bytes(changed), "fuzz.zip")
    except StudioError:
        return
    try:
        expected = read_members(bundles["signed"])
        assert {name: bundle.read(name, limit=2**30) for name in bundle.names()} == \
            {name: expected[name] for name in bundle.names()}
        assert set(bundle.names()) == set(expected) - {"manifest.json", "manifest.sig"}
    finally:
        bundle.close()
