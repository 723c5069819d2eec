"""The labelled corpus of `pii_corpus.yaml`: detection and masking asserted entry by entry.

PII entries run all eleven detectors (so a negative for one kind must not trip any other);
jailbreak entries run the heuristic. See the header of the YAML file for the format.
"""

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tokenomics.domain.engine import mask
from tokenomics.domain.jailbreak import FAMILIES, detect_jailbreak
from tokenomics.domain.pii import PII_LABELS, find_pii
from tokenomics.domain.rules import PII_TYPES, compile_rule

CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "pii_corpus.yaml").read_text("utf-8")
)
PII_ENTRIES = [entry for entry in CORPUS if "pii" in entry]
JAILBREAK_ENTRIES = [entry for entry in CORPUS if "jailbreak" in entry]
PII_RULE = compile_rule({"type": "pii", "detect": list(PII_TYPES), "action": "mask"})
JAILBREAK_RULE = compile_rule({"type": "jailbreak", "action": "mask"})
ID_PREFIX = {
    "ssn": "ssn-",
    "credit_card": "card-",
    "email": "email-",
    "phone": "phone-",
    "ip_address": "ip-",
    "aws_key": "aws-",
    "api_key": "api-",
    "jwt": "jwt-",
    "private_key": "pk-",
    "connection_string": "conn-",
    "github_token": "gh-",
}


@pytest.mark.parametrize("entry", PII_ENTRIES, ids=[entry["id"] for entry in PII_ENTRIES])
def test_pii_detection(entry: dict[str, Any]) -> None:
    text = entry["text"]
    findings = sorted(find_pii(text, PII_TYPES), key=lambda f: f.start)
    assert [[f.kind, text[f.start : f.end]] for f in findings] == entry["pii"]
    assert all(f.label == PII_LABELS[f.kind] for f in findings)


@pytest.mark.parametrize("entry", PII_ENTRIES, ids=[entry["id"] for entry in PII_ENTRIES])
def test_pii_masking(entry: dict[str, Any]) -> None:
    assert mask([PII_RULE], entry["text"], "input") == entry["masked"]


@pytest.mark.parametrize(
    "entry", JAILBREAK_ENTRIES, ids=[entry["id"] for entry in JAILBREAK_ENTRIES]
)
def test_jailbreak_detection(entry: dict[str, Any]) -> None:
    assert detect_jailbreak(entry["text"]) == entry["jailbreak"]


@pytest.mark.parametrize(
    "entry", JAILBREAK_ENTRIES, ids=[entry["id"] for entry in JAILBREAK_ENTRIES]
)
def test_jailbreak_masking(entry: dict[str, Any]) -> None:
    assert mask([JAILBREAK_RULE], entry["text"], "input") == entry["masked"]


def test_corpus_is_large_and_covers_every_kind_both_ways() -> None:
    assert len(CORPUS) >= 150
    assert len({entry["id"] for entry in CORPUS}) == len(CORPUS)
    positives = Counter(kind for entry in PII_ENTRIES for kind, _ in entry["pii"])
    negatives = [entry for entry in PII_ENTRIES if not entry["pii"]]
    assert set(positives) == set(PII_TYPES) == set(ID_PREFIX)
    for kind, prefix in ID_PREFIX.items():
        assert sum(entry["id"].startswith(prefix) for entry in negatives) >= 3, kind
    fired = {entry["jailbreak"] for entry in JAILBREAK_ENTRIES}
    assert fired == {*FAMILIES, None}
    assert sum(entry["jailbreak"] is None for entry in JAILBREAK_ENTRIES) >= 20
