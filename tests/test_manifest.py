"""One manifest contract: the C++ validator (used by Python here, by the localizer and by
Android through JNI) and schemas/bundle-manifest.schema.json accept and refuse the shared
fixtures alike."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from vpr_embedded.manifest import BundleError, Manifest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "manifests"
SCHEMA = json.loads((ROOT / "schemas" / "bundle-manifest.schema.json").read_text())
REFUSALS: dict[str, str] = json.loads((FIXTURES / "refusals.json").read_text())
GOOD = sorted((FIXTURES / "good").glob("*.json"))
# Refusals of the file rather than the document: a byte order mark, text that is not JSON,
# and an integer written with a fraction (JSON Schema calls 64.0 an integer).
FILE_RULES = {"byte_order_mark", "not_json", "float_height"}
BAD = sorted((FIXTURES / "bad").glob("*.json"))


def test_the_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert GOOD and len(BAD) == len(REFUSALS)


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_manifests_pass_the_validator_and_the_schema(path: Path) -> None:
    text = path.read_text()
    m = Manifest.from_text(text, path.name)
    assert m.descriptor_dim == 1280 and m.pte_sha256 == "ab" * 32
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_manifests_are_refused_by_both(path: Path) -> None:
    raw = path.read_bytes()
    with pytest.raises(BundleError, match=REFUSALS[path.name]) as refused:
        Manifest.from_text(raw.decode("utf-8"), path.name)
    assert str(refused.value).startswith(f"{path.name}: ")
    assert str(refused.value).endswith("re-export the bundle")
    if path.stem in FILE_RULES:
        return  # the schema's description states these; JSON Schema cannot express them
    document = json.loads(raw)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
