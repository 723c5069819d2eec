"""N requests one after the other on one keep-alive connection, like bench/post.lua (stdlib).

python bench/sequential.py PORT TOKEN N STREAM     exits non-zero on any status but 200
"""

from __future__ import annotations

import http.client
import sys

from responses import request_body  # bench/ is on sys.path when this file runs as a script


def main(port: int, token: str, count: int, stream: bool) -> None:
    body = request_body(stream)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    for _ in range(count):
        connection.request("POST", "/v1/chat/completions", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"status {response.status}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
