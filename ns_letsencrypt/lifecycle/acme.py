"""Unauthenticated HTTPS to the ACME CA: its directory and RFC 9773 renewal information.

This is not NITRO, so it does not go through nitro.py; it uses requests with TLS verification
always on (the CA file of dehydrated's CURL_OPTS, else the system's roots). Every failure is an
:class:`AcmeHttpError` whose message names the URL and what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union

import requests

from ..errors import ExitStatus, NsLeError

TIMEOUT = (5.0, 20.0)


class AcmeHttpError(NsLeError):
    """The CA could not be asked, or answered something unusable."""

    exit_status = ExitStatus.CONNECT

    def __init__(self, message: str, hint: Optional[str] = None,
                 retry_after: Optional[str] = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    """A JSON object the CA answered with, and its Retry-After header (None when absent)."""

    body: dict[str, Any]
    retry_after: Optional[str]


def get_json(url: str, verify: Union[str, bool]) -> Answer:
    """GET ``url`` and return its JSON object; raise AcmeHttpError for anything else."""
    try:
        response = requests.get(url, timeout=TIMEOUT, verify=verify,
                                headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise AcmeHttpError(f"GET {url}: {type(exc).__name__}: {exc}",
                            hint="check CA and CURL_OPTS (--cacert) in config.sh") from None
    retry_after = response.headers.get("Retry-After")
    if response.status_code != 200:
        raise AcmeHttpError(f"GET {url}: HTTP {response.status_code}", retry_after=retry_after)
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        raise AcmeHttpError(f"GET {url}: the answer is not JSON",
                            retry_after=retry_after) from None
    if not isinstance(body, dict):
        raise AcmeHttpError(f"GET {url}: the answer is not a JSON object",
                            retry_after=retry_after)
    return Answer(body, retry_after)


def directory(url: str, verify: Union[str, bool]) -> dict[str, Any]:
    """The CA's ACME directory object."""
    return get_json(url, verify).body
