"""A deliberately dumb NITRO client for testing the fake itself (not our real client).

It sends exactly the requests a test writes, so the fake is checked against nitro-reference.md
rather than against ``ns_letsencrypt.nitro``.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import requests


class Answer:
    """Status, headers and decoded JSON body (None when the body is not JSON) of one reply."""

    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        self.headers = response.headers
        self.text = response.text
        try:
            self.json: Any = response.json()
        except ValueError:
            self.json = None

    @property
    def errorcode(self) -> Optional[int]:
        return self.json.get("errorcode") if isinstance(self.json, dict) else None

    @property
    def message(self) -> str:
        return str(self.json.get("message", "")) if isinstance(self.json, dict) else ""

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.text[:300]!r}>"


class RawNitro:
    """Raw HTTP to ``<base>/nitro/v1/config/...`` with an optional session cookie."""

    def __init__(self, base: str, verify: Any = False, timeout: float = 10.0) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`
        self.verify = verify
        self.timeout = timeout
        self.token: Optional[str] = None
        self.headers: dict[str, str] = {}

    def __enter__(self) -> RawNitro:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None,
                headers: Optional[dict[str, str]] = None, raw: Optional[bytes] = None,
                cookie: bool = True) -> Answer:
        sent = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        if cookie and self.token and "Cookie" not in sent:
            sent["Cookie"] = f"NITRO_AUTH_TOKEN={self.token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self.http.request(method, f"{self.base}/nitro/v1/config/{path}", data=data,
                                     headers=sent, verify=self.verify, timeout=self.timeout)
        return Answer(response)

    def login(self, user: str, password: str, **extra: Any) -> Answer:
        answer = self.request("POST", "login",
                              {"login": {"username": user, "password": password, **extra}},
                              cookie=False)
        if answer.status == 201:
            self.token = answer.json["sessionid"]
        return answer

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Answer:
        return self.request("DELETE", path, **kw)


def as_policyless_user(fake: Any, method: str, path: str, body: Any = None) -> Answer:
    """Send one request as a user bound to no command policy (every command is refused)."""
    fake.add_user("nobody", "nobody-pw", policies=[])
    with RawNitro(fake.http_url) as client:
        client.headers = {"X-NITRO-USER": "nobody", "X-NITRO-PASS": "nobody-pw"}
        return client.request(method, path, body)
