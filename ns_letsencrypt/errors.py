"""The exception tree of ns-letsencrypt and the exit status each class maps to.

The library raises these; only ``cli.main`` catches them and turns them into a one-line
message and an exit code. No message may ever contain a password or a private key.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Optional


class ExitStatus(enum.IntEnum):
    """Process exit codes, one per failure class (documented in the README)."""

    OK = 0
    INTERNAL = 1  # a bug: unexpected exception (run with --debug for the traceback)
    CONFIG = 2  # usage or configuration error; nothing was sent to the appliance
    CONNECT = 3  # the appliance could not be reached (network, TLS, timeout)
    AUTH = 4  # credentials refused, or the NITRO user lacks a permission
    APPLIANCE = 5  # the appliance rejected an operation, or answered something unexpected
    NOT_READY = 6  # the appliance is not fit for the job (HA secondary, feature off, vserver)
    CHALLENGE = 7  # the HTTP-01 challenge could not be served or failed its pre-flight
    DEPLOY = 8  # certificate deployment failed (the previous certificate keeps serving)


class NsLeError(Exception):
    """Base class of every error this tool raises on purpose."""

    exit_status = ExitStatus.INTERNAL

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ConfigError(NsLeError):
    """The configuration or the command line is invalid; carries every problem found."""

    exit_status = ExitStatus.CONFIG

    def __init__(self, problems: list[str] | str, hint: Optional[str] = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} configuration problems: " + "; ".join(self.problems)
        )
        super().__init__(text, hint)


class InputError(ConfigError):
    """A file or argument handed to us (certificate, key, domain name) is unusable."""


class NitroError(NsLeError):
    """Any failure while talking to the appliance over NITRO."""


class NitroConnectionError(NitroError):
    """The appliance could not be reached: DNS, refused, reset, timeout, TLS failure."""

    exit_status = ExitStatus.CONNECT

    def __init__(self, method: str, resource: str, reason: str, hint: Optional[str] = None):
        self.method = method
        self.resource = resource
        self.reason = reason
        super().__init__(f"{method} {resource}: could not reach the appliance: {reason}", hint)


# errorcode -> what the admin should do about it
KNOWN_HINTS: dict[int, str] = {
    257: "the appliance refused the operation; check the NITRO user's rights",
    258: "the named object does not exist on the appliance; check the name in the configuration",
    273: "an object with this name or content already exists",
    354: "check NS_USER and NS_PASSWORD (or NS_PASSWORD_FILE)",
    355: "check NS_USER and NS_PASSWORD (or NS_PASSWORD_FILE)",
    371: "the NITRO user has no command policy bound; see 'ns-letsencrypt policy'",
    444: "the NITRO session expired; the client logs in again once, so this repeats only if "
    "sessions are killed continuously",
    445: "too many open NITRO sessions for this user; close stale sessions or raise maxsession",
    1046: "log in once interactively and change the password of this user",
    1067: "enable the feature on the appliance, e.g. 'enable ns feature responder'",
    1106: "a name is longer than the appliance allows",
    1244: "header authentication is disabled on the appliance; use session auth (NS_AUTH=session)",
    1537: "the private key is encrypted or unreadable; dehydrated keys must be unencrypted PEM",
    1538: "the certificate and the private key do not match",
    1540: "the certificate-key pair does not exist on the appliance",
    1541: "the certificate-key pair is still bound or linked; unbind it first",
    1548: "the issuer certificate does not match; the chain file is not the leaf's issuer",
    1642: "a file with this name already exists in the certificate directory",
    2054: "the responder policy does not exist",
    2138: "the NITRO user's command policy does not allow this command; "
    "see 'ns-letsencrypt policy'",
    3585: "the certificate names changed; the update needs the no-domain-check option",
}

AUTH_CODES = frozenset({354, 355, 444, 1027, 1244, 1046})
PERMISSION_CODES = frozenset({2138, 371})
NOT_FOUND_CODES = frozenset({258, 1540, 2054, 461, 1208})
_BRACKET = re.compile(r"\[([^\]]*)\]\s*$")


class NitroApiError(NitroError):
    """The appliance answered, and said no (or said something we cannot read)."""

    exit_status = ExitStatus.APPLIANCE

    def __init__(
        self,
        method: str,
        resource: str,
        http_status: int,
        errorcode: int,
        nitro_message: str,
        severity: str = "ERROR",
        hint: Optional[str] = None,
    ) -> None:
        self.method = method
        self.resource = resource
        self.http_status = http_status
        self.errorcode = errorcode
        self.nitro_message = nitro_message
        self.severity = severity
        # one answer per item when a bulk request failed in part (HTTP 207, errorcode 1243)
        self.responses: list[dict[str, Any]] = []
        text = (
            f"{method} {resource} failed: HTTP {http_status}, "
            f"errorcode {errorcode}: {nitro_message}"
        )
        super().__init__(text, hint if hint is not None else KNOWN_HINTS.get(errorcode))

    @property
    def bracket(self) -> Optional[str]:
        """The trailing ``[argument, value]`` context of a NITRO message, if any."""
        match = _BRACKET.search(self.nitro_message)
        return match.group(1) if match else None

    @classmethod
    def from_body(
        cls, method: str, resource: str, http_status: int, body: Mapping[str, Any]
    ) -> NitroApiError:
        """Build the most specific subclass for a NITRO error body."""
        try:
            code = int(body.get("errorcode", -1))
        except (TypeError, ValueError):
            code = -1
        message = str(body.get("message", "")).strip() or "(no message)"
        severity = str(body.get("severity", "ERROR"))
        klass: type[NitroApiError] = cls
        if code in AUTH_CODES:
            klass = NitroAuthError
        elif code in PERMISSION_CODES or http_status == 403:
            klass = NitroPermissionError
        elif code in NOT_FOUND_CODES:
            klass = NitroNotFound
        return klass(method, resource, http_status, code, message, severity)


class NitroAuthError(NitroApiError):
    """Login refused or session lost: wrong user/password, header auth disabled."""

    exit_status = ExitStatus.AUTH


class NitroPermissionError(NitroApiError):
    """The user's command policy denies the command (errorcode 2138)."""

    exit_status = ExitStatus.AUTH

    @property
    def command(self) -> Optional[str]:
        """The CLI command the appliance refused, as it names it in the message."""
        return self.bracket


class NitroNotFound(NitroApiError):
    """The object does not exist (258, 1540, 2054 ...)."""


class ApplianceNotReady(NsLeError):
    """The appliance works but is not fit for the job: HA secondary, feature off, vserver."""

    exit_status = ExitStatus.NOT_READY


class ChallengeError(NsLeError):
    """An HTTP-01 challenge could not be deployed or does not answer correctly."""

    exit_status = ExitStatus.CHALLENGE


class DeployError(NsLeError):
    """Deploying a certificate failed at ``step``; the previous certificate keeps serving."""

    exit_status = ExitStatus.DEPLOY

    def __init__(self, step: str, message: str, hint: Optional[str] = None) -> None:
        self.step = step
        super().__init__(f"deploy failed at step '{step}': {message}", hint)


# -- DNS-01 (issue 11) --------------------------------------------------------------------


class DnsError(ChallengeError):
    """A DNS-01 value could not be published, removed, or seen on an authoritative server."""


class DnsNotReady(ApplianceNotReady):
    """The DNS system cannot take challenges: not authoritative, no zone, server silent."""
