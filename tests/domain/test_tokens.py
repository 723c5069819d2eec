import hashlib
import hmac

import pytest

from tokenomics.domain.errors import SecurityError
from tokenomics.domain.tokens import TOKEN_RE, HashKey, hash_token, new_token

ZERO_TOKEN = "tkn_00000000-0000-4000-8000-000000000000"


def test_hash_vectors_of_the_original() -> None:
    assert hash_token(b"tokenomics-default-key-change-me", ZERO_TOKEN) == (
        "29c31f9ab5e59f98d0c83fbf883d4ce118bede12ac353b27c0521e998bff4538"
    )
    assert hash_token(b"my-secret-hash-key", ZERO_TOKEN) == (
        "9d792d339e02a8dc0df30aec781fdc6b7c2baa4aa00510c485b964a8a7c75b84"
    )


def test_new_tokens_are_uuid4_shaped_and_distinct() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(TOKEN_RE.fullmatch(t) for t in tokens)


def test_hash_key_comes_from_the_named_variable() -> None:
    key = HashKey.from_env({"MY_KEY": "s3cret"}, "MY_KEY")
    token = new_token()
    expected = hmac.new(b"s3cret", token.encode(), hashlib.sha256).hexdigest()
    assert key.hash(token) == expected


@pytest.mark.parametrize("environ", [{}, {"TOKENOMICS_HASH_KEY": ""}])
def test_missing_hash_key_is_refused_with_instructions(environ: dict[str, str]) -> None:
    with pytest.raises(SecurityError, match="export TOKENOMICS_HASH_KEY"):
        HashKey.from_env(environ, "TOKENOMICS_HASH_KEY")


def test_remembered_hashes_stay_right_past_the_memo_bound_and_hide_in_repr() -> None:
    key = HashKey(b"memo-secret")
    tokens = [new_token() for _ in range(5000)]  # more than the memo holds
    for _ in range(2):
        assert all(key.hash(t) == hash_token(b"memo-secret", t) for t in tokens)
    assert "memo-secret" not in repr(key) and tokens[-1] not in repr(key)
