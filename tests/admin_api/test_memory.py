"""`/admin/api/memory/files…`: list and read the files under `{dir}/memory`; no path, however
spelled (`..`, percent-encoded, absolute, backslashes, symlinks), reads anything outside it."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from tests.support.proxy import Proxy
from tests.support.raw_http import raw_request

from tokenomics.services.admin.memory_files import MAX_CONTENT

SECRET = "TOP-SECRET-OUTSIDE"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def memory(proxy: Proxy, tmp_path: Path) -> Path:
    root = proxy.settings.memory_dir
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "a.md").write_text(f"# memory\n{XSS}\n")
    (root / "sub" / "b.md").write_text("nested\n")
    (root / "old.md.gz").write_bytes(gzip.compress(b"rotated text\n"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(SECRET)
    os.symlink(outside / "secret.md", root / "link.md")
    os.symlink(outside, root / "linkdir")
    os.utime(root / "a.md", (2_000_000_000, 2_000_000_000))  # the newest
    return root


async def test_the_list_has_regular_files_only_newest_first(proxy: Proxy, memory: Path) -> None:
    async with proxy.client() as client:
        got = (await client.get("/admin/api/memory/files")).json()
    paths = [f["path"] for f in got["files"]]
    assert set(paths) == {"a.md", "sub/b.md", "old.md.gz"} and got["count"] == 3
    assert paths[0] == "a.md"
    first = got["files"][0]
    assert first["size"] == (memory / "a.md").stat().st_size
    assert first["mod_time"] == "2033-05-18T03:33:20Z"


async def test_a_file_is_read_as_json_text(proxy: Proxy, memory: Path) -> None:
    async with proxy.client() as client:
        a = await client.get("/admin/api/memory/files/a.md")
        nested = (await client.get("/admin/api/memory/files/sub/b.md")).json()
        rotated = (await client.get("/admin/api/memory/files/old.md.gz")).json()
    assert a.headers["content-type"] == "application/json"
    assert a.json() == {
        "path": "a.md", "size": len(f"# memory\n{XSS}\n"), "content": f"# memory\n{XSS}\n",
        "truncated": False,
    }  # fmt: skip
    assert nested["content"] == "nested\n"
    assert rotated["content"] == "rotated text\n"


async def test_a_gz_file_that_is_not_gzip_says_so(proxy: Proxy, memory: Path) -> None:
    (memory / "bad.md.gz").write_bytes(b"not gzip at all")
    async with proxy.client() as client:
        response = await client.get("/admin/api/memory/files/bad.md.gz")
    assert (response.status_code, response.json()) == (422, {"error": "file is not valid gzip"})


async def test_a_large_file_is_cut(proxy: Proxy, memory: Path) -> None:
    (memory / "big.md").write_bytes(b"x" * (MAX_CONTENT + 10))
    async with proxy.client() as client:
        got = (await client.get("/admin/api/memory/files/big.md")).json()
    assert got["truncated"] is True and len(got["content"]) == MAX_CONTENT
    assert got["size"] == MAX_CONTENT + 10


ESCAPES = [
    b"/admin/api/memory/files/../../tokenomics.db",
    b"/admin/api/memory/files/..",
    b"/admin/api/memory/files/sub/../../x",
    b"/admin/api/memory/files/%2e%2e/%2e%2e/tokenomics.db",
    b"/admin/api/memory/files/%2E%2E%2Ftokenomics.db",
    b"/admin/api/memory/files/..%2f..%2ftokenomics.db",
    b"/admin/api/memory/files/%252e%252e/tokenomics.db",
    b"/admin/api/memory/files//etc/passwd",
    b"/admin/api/memory/files/%2Fetc%2Fpasswd",
    b"/admin/api/memory/files/..%5c..%5ctokenomics.db",
    b"/admin/api/memory/files/a.md%00.png",
    b"/admin/api/memory/files/./a.md",
    b"/admin/api/memory/files/",
]


async def test_escapes_are_refused(proxy: Proxy, memory: Path) -> None:
    for target in ESCAPES:
        reply = await raw_request(proxy.url, "GET", target, {})
        assert reply.status == 400, (target, reply.body)
        assert reply.json() == {"error": "invalid file path"}


async def test_symlinks_and_missing_files_are_not_found(proxy: Proxy, memory: Path) -> None:
    async with proxy.client() as client:
        for path in ("link.md", "linkdir/secret.md", "missing.md", "sub", "sub/missing.md",
                     "a.md/x"):  # fmt: skip
            response = await client.get(f"/admin/api/memory/files/{path}")
            assert (response.status_code, response.json()) == (
                404, {"error": "file not found"},
            ), path  # fmt: skip
            assert SECRET not in response.text


async def test_a_symlinked_subdirectory_swapped_in_is_not_followed(
    proxy: Proxy, memory: Path, tmp_path: Path
) -> None:
    """The directory that was checked is replaced by a symlink: still nothing outside."""
    (memory / "sub" / "b.md").unlink()
    (memory / "sub").rmdir()
    os.symlink(tmp_path / "outside", memory / "sub")
    async with proxy.client() as client:
        response = await client.get("/admin/api/memory/files/sub/secret.md")
    assert response.status_code == 404 and SECRET not in response.text


async def test_without_a_memory_directory(proxy: Proxy) -> None:
    async with proxy.client() as client:
        listed = (await client.get("/admin/api/memory/files")).json()
        one = await client.get("/admin/api/memory/files/a.md")
    assert listed == {"count": 0, "files": []}
    assert one.status_code == 404
