"""HTTP-01 challenges answered by the NetScaler: deploy, clean, sweep and pre-flight check.

For each challenge we create a ``respondwith`` responder action returning exactly the key
authorization, a responder policy matching exactly ``/.well-known/acme-challenge/<token>`` (and
the host), and bind the policy to the configured bind point: an LB or CS vserver, or globally
as ``REQ_OVERRIDE``. Priorities are the lowest free ones at or above ``priority_start``, read
from the bind point itself, so no state passes between hook processes.

Many challenges cost the same number of NITRO requests as one: the bindings are read once and
actions, policies and bindings are each written with one bulk request. Object names derive
from the token (prefix + hash), so ``clean`` finds exactly what ``deploy`` made. Each object
carries a comment ``ns-letsencrypt <install-id> <unix time>`` so that ``sweep`` removes this
installation's leftovers at once and another installation's only once they are stale.

This module never catches connection failures: callers (the hook) decide what they mean.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .config import Settings, split_host_port
from .errors import (
    PERMISSION_CODES,
    ChallengeError,
    NitroApiError,
    NitroAuthError,
    NitroNotFound,
    NitroPermissionError,
)
from .naming import POLICY_MAX, is_valid_name, short_hash
from .nitro import JsonObj, NitroClient

logger = logging.getLogger(__name__)

CHALLENGE_PATH = "/.well-known/acme-challenge/"
# Also match the Host header, so that a challenge only answers for the name it belongs to.
MATCH_HOSTNAME = True
# Another installation's objects are swept only when older than this (it may still be running).
SWEEP_GRACE_SECONDS = 2 * 3600
BIND_ATTEMPTS = 3  # a bind that races another writer for a priority is re-planned this often
PREFLIGHT_TIMEOUT = 5.0
PREFLIGHT_WORKERS = 16
LITERAL_MAX = 255  # longest string literal a NetScaler expression accepts
MARKER = "ns-letsencrypt"
RESPONSE_HEAD = "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n"  # escapes, not bytes

BULK_FAILED = 1243
PRIORITY_TAKEN = 3041
EXISTS_CODES = frozenset({273, 3094})
GONE_CODES = frozenset({258, 461, 1208, 2054, 2097, 3093})

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_KEY_AUTHORIZATION = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_REDIRECT_STATUS = re.compile(r"HTTP/1\.[01] 30[1278]")
_HOST_IN_RULE = re.compile(r'HTTP\.REQ\.HOSTNAME[A-Z_().]*\.EQ\("([^"]+)"\)')


@dataclass(frozen=True)
class Challenge:
    """One HTTP-01 challenge as dehydrated hands it over."""

    domain: str
    token: str
    key_authorization: str

    @property
    def path(self) -> str:
        """The URL path the CA requests."""
        return CHALLENGE_PATH + self.token


@dataclass(frozen=True)
class Bound:
    """A policy bound at a bind point, with its priority."""

    policyname: str
    priority: int


@dataclass(frozen=True)
class BindPoint:
    """Where challenge policies are bound: an lb or cs vserver, or global REQ_OVERRIDE."""

    kind: str  # "lb", "cs" or "global"
    vserver: Optional[str] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BindPoint:
        """The bind point the configuration names.

        Raises:
            ChallengeError: a vserver bind point without a vserver name.
        """
        if settings.vserver_type == "global":
            return cls("global")
        if not settings.vserver:
            raise ChallengeError(f"NS_VSERVER is not set (NS_VSERVER_TYPE={settings.vserver_type})",
                                 "set NS_VSERVER to the HTTP vserver that receives port-80 traffic")
        return cls(settings.vserver_type, settings.vserver)

    @property
    def resource(self) -> str:
        """The NITRO binding resource of this bind point."""
        if self.kind == "global":
            return "responderglobal_responderpolicy_binding"
        return f"{self.kind}vserver_responderpolicy_binding"

    @property
    def label(self) -> str:
        """How messages name this bind point."""
        if self.kind == "global":
            return "the global REQ_OVERRIDE bind point"
        return f"{self.kind} vserver '{self.vserver}'"

    def read(self, client: NitroClient) -> list[Bound]:
        """The responder policies bound here, lowest priority number first.

        Raises:
            ChallengeError: the vserver does not exist.
        """
        try:
            if self.kind == "global":
                items = client.get(self.resource, args={"type": "REQ_OVERRIDE"})
            else:
                items = client.get(self.resource, self.vserver)
        except NitroNotFound as exc:
            raise ChallengeError(f"cannot read the responder bindings of {self.label}: "
                                 f"{exc.nitro_message}",
                                 "check NS_VSERVER and NS_VSERVER_TYPE ('ns-letsencrypt test')"
                                 ) from None
        bound = [Bound(str(i.get("policyname", "")), _int(i.get("priority"))) for i in items]
        return sorted((b for b in bound if b.policyname), key=lambda b: b.priority)

    def binding(self, policy: str, priority: int) -> JsonObj:
        """The body of one binding of ``policy`` at ``priority``."""
        body: JsonObj = {"policyname": policy, "priority": priority,
                         "gotopriorityexpression": "END"}
        if self.kind == "global":
            body["type"] = "REQ_OVERRIDE"
        else:
            body = {"name": self.vserver, **body, "bindpoint": "REQUEST"}
        return body

    def unbind_key(self, policy: str) -> JsonObj:
        """The key that identifies the binding of ``policy`` for an unbind."""
        if self.kind == "global":
            return {"policyname": policy, "type": "REQ_OVERRIDE"}
        return {"name": self.vserver, "policyname": policy}

    @property
    def name_key(self) -> Optional[str]:
        """Which key of :meth:`unbind_key` goes into the URL path of a single unbind."""
        return None if self.kind == "global" else "name"


@dataclass(frozen=True)
class Deployment:
    """What :func:`deploy` did: the bind point, our priorities, everybody else's bindings."""

    point: BindPoint
    priorities: Mapping[str, int]  # our policy name -> priority
    others: tuple[Bound, ...] = field(default=())  # other policies bound at the bind point


# -- names, ownership, validation ---------------------------------------------------------


def object_names(settings: Settings, token: str) -> tuple[str, str]:
    """(action name, policy name) of a challenge: the prefix plus a hash of the whole token.

    Raises:
        ChallengeError: the configured prefix makes names NetScaler refuses.
    """
    digest = short_hash(token, 16)
    names = (f"{settings.challenge_prefix}{digest}-act", f"{settings.challenge_prefix}{digest}-pol")
    for name in names:
        if not is_valid_name(name, POLICY_MAX):
            raise ChallengeError(f"NS_CHALLENGE_PREFIX={settings.challenge_prefix!r} gives the "
                                 f"invalid object name {name!r}",
                                 "use letters, digits, '_', '-' and '.' only, at most 100 chars")
    return names


def install_id() -> str:
    """A stable id of this installation: its directory and the host it runs on."""
    directory = Path(__file__).resolve().parent.parent
    return short_hash(f"{directory}\0{socket.gethostname()}", 12)


def ownership_comment(owner: str, now: float) -> str:
    """The comment that tells the sweep who made an object, and when."""
    return f"{MARKER} {owner} {int(now)}"


def _owner_and_time(comment: Any) -> Optional[tuple[str, int]]:
    parts = str(comment or "").split()
    if len(parts) < 3 or parts[0] != MARKER or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def validate(challenges: Sequence[Challenge]) -> None:
    """Reject, before any NITRO write, what the NetScaler cannot answer or must not see.

    Raises:
        ChallengeError: a wildcard, an IP address, an invalid DNS name, or a token or key
            authorization that is not base64url (it goes into an expression literal).
    """
    problems = [p for c in challenges for p in _challenge_problems(c)]
    if problems:
        raise ChallengeError("; ".join(problems),
                             "http-01 validates plain DNS names only; use dns-01 for wildcards")


def _challenge_problems(challenge: Challenge) -> list[str]:
    problems = []
    name_problem = domain_problem(challenge.domain)
    if name_problem:
        problems.append(f"{challenge.domain!r}: {name_problem}")
    if not _TOKEN.match(challenge.token):
        problems.append(f"{challenge.domain!r}: the token is not base64url")
    if not _KEY_AUTHORIZATION.match(challenge.key_authorization) or (
        not challenge.key_authorization.startswith(challenge.token + ".")
    ):
        problems.append(f"{challenge.domain!r}: the key authorization is not <token>.<thumbprint>")
    return problems


def domain_problem(domain: str) -> Optional[str]:
    """Why an http-01 responder cannot answer for ``domain``, or None when it can."""
    if domain.startswith("*."):
        return "wildcard names cannot be validated with http-01"
    try:
        ipaddress.ip_address(domain.strip("[]"))
        return "IP addresses are not supported by this http-01 responder"
    except ValueError:
        pass
    if len(domain) > 253:
        return "longer than 253 characters"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "not a valid DNS name (labels of 1-63 letters, digits and inner hyphens)"
    if labels[-1].isdigit():
        return "the top-level label is numeric"
    return None


def parse_triples(args: Sequence[str]) -> list[Challenge]:
    """dehydrated's ``DOMAIN TOKEN KEY_AUTH`` triples (one for HOOK_CHAIN=no, N for yes).

    Raises:
        ChallengeError: the argument count is not a positive multiple of three.
    """
    if not args or len(args) % 3:
        raise ChallengeError(f"expected DOMAIN TOKEN KEY_AUTHORIZATION triples, got "
                             f"{len(args)} argument(s)")
    return [Challenge(args[i], args[i + 1], args[i + 2]) for i in range(0, len(args), 3)]


# -- payloads -----------------------------------------------------------------------------


def _literal(text: str) -> str:
    """``text`` as NetScaler string literals joined with ``+``, each within the 255 limit."""
    chunks = [text[i:i + LITERAL_MAX] for i in range(0, len(text), LITERAL_MAX)] or [""]
    return " + ".join(f'"{chunk}"' for chunk in chunks)


def _rule(challenge: Challenge) -> str:
    rule = f"HTTP.REQ.URL.EQ({_literal(challenge.path)})"
    if MATCH_HOSTNAME:
        host = challenge.domain.lower()
        rule += f" && HTTP.REQ.HOSTNAME.SET_TEXT_MODE(IGNORECASE).EQ({_literal(host)})"
    return rule


def _action_body(name: str, challenge: Challenge, comment: str) -> JsonObj:
    target = f'"{RESPONSE_HEAD}" + {_literal(challenge.key_authorization)}'
    return {"name": name, "type": "respondwith", "target": target, "comment": comment}


def _policy_body(name: str, action: str, challenge: Challenge, comment: str) -> JsonObj:
    return {"name": name, "rule": _rule(challenge), "action": action, "comment": comment}


# -- deploy -------------------------------------------------------------------------------


def deploy(
    client: NitroClient,
    settings: Settings,
    challenges: Sequence[Challenge],
    *,
    owner: Optional[str] = None,
    now: Optional[float] = None,
) -> Deployment:
    """Make the appliance answer every challenge; idempotent for an identical re-run.

    Requests: one GET of the bind point's bindings, then one bulk POST of actions, one of
    policies, and one bulk PUT of bindings, whatever the number of challenges.

    Raises:
        ChallengeError: invalid names (before any write), a missing vserver, or an object the
            appliance refused; what was created is left for clean/sweep to remove.
        NitroPermissionError: the user's command policy refused a command (also when it is
            one item's answer in a bulk request); the message names the command.
    """
    validate(challenges)
    point = BindPoint.from_settings(settings)
    bound = point.read(client)
    comment = ownership_comment(owner or install_id(), time.time() if now is None else now)
    names = [object_names(settings, c.token) for c in challenges]
    actions = [_action_body(act, c, comment) for (act, _), c in zip(names, challenges)]
    policies = [_policy_body(pol, act, c, comment) for (act, pol), c in zip(names, challenges)]
    _add_all(client, "responderaction", actions)
    _add_all(client, "responderpolicy", policies)
    ours = {pol for _, pol in names}
    already = {b.policyname: b.priority for b in bound if b.policyname in ours}
    todo = [pol for _, pol in names if pol not in already]
    placed = _bind_all(client, point, todo, bound, settings.priority_start)
    others = tuple(b for b in bound if b.policyname not in ours)
    logger.info("deployed %d challenge(s) at %s", len(challenges), point.label)
    return Deployment(point, {**already, **placed}, others)


def _add_all(client: NitroClient, resource: str, bodies: Sequence[JsonObj]) -> None:
    """One bulk add; objects that already exist (a re-run for the same token) are fine.

    HTTP 409 (Conflict) counts as "exists" too: the errorcode that comes with it is confirmed
    for policies (3094) but only presumed for actions (273).
    """
    answers = _bulk(client.add, resource, list(bodies))
    failed = [(body["name"], a.message) for body, a in zip(bodies, answers)
              if a.code and a.code not in EXISTS_CODES and not a.conflict]
    if failed:
        raise ChallengeError(f"the appliance refused to add {resource} " +
                             ", ".join(f"{name} ({msg})" for name, msg in failed))


def _bind_all(
    client: NitroClient, point: BindPoint, policies: Sequence[str], bound: Sequence[Bound],
    start: int,
) -> dict[str, int]:
    """Bind at the lowest free priorities; re-read and re-plan when another writer got there."""
    placed: dict[str, int] = {}
    pending = list(policies)
    occupied = {b.priority for b in bound}
    for _attempt in range(BIND_ATTEMPTS):
        if not pending:
            return placed
        plan = dict(zip(pending, free_priorities(occupied, start, len(pending))))
        items = [point.binding(pol, prio) for pol, prio in plan.items()]
        answers = _bulk(client.bind, point.resource, items)
        raced = [pol for pol, a in zip(plan, answers) if a.code == PRIORITY_TAKEN]
        refused = [f"{pol} ({a.message})" for pol, a in zip(plan, answers)
                   if a.code not in (0, PRIORITY_TAKEN) and a.code not in EXISTS_CODES]
        if refused:
            raise ChallengeError(f"the appliance refused to bind at {point.label}: "
                                 + ", ".join(refused))
        placed.update({pol: prio for pol, prio in plan.items() if pol not in raced})
        pending = raced
        if raced:
            logger.info("priority taken meanwhile for %d policies; re-reading", len(raced))
            occupied = {b.priority for b in point.read(client)} | set(placed.values())
    if pending:
        raise ChallengeError(f"no free priority found at {point.label} after {BIND_ATTEMPTS} "
                             "attempts; another process keeps binding policies there")
    return placed


def free_priorities(occupied: Iterable[int], start: int, count: int) -> list[int]:
    """The ``count`` lowest priorities >= ``start`` that nobody uses."""
    taken = set(occupied)
    found: list[int] = []
    candidate = max(1, start)
    while len(found) < count:
        if candidate not in taken:
            found.append(candidate)
        candidate += 1
    return found


@dataclass(frozen=True)
class Answer:
    """The appliance's answer to one item of a bulk request (code 0: done)."""

    code: int
    message: str
    conflict: bool = False  # the item was refused on its own with HTTP 409


DONE = Answer(0, "Done")


def _bulk(method: Callable[..., Any], resource: str, items: list[JsonObj]) -> list[Answer]:
    """Send ``items`` as one bulk request that goes on after a failed item; one answer each.

    A 207 (errorcode 1243) carries one answer per item. A request that fails as a whole
    without them (a single item, or a firmware answering e.g. 409 when every item exists) is
    resent item by item, so each item still gets its own answer. A refused login or command
    is raised as such: it is about the NITRO user's rights, not about one challenge object.
    """
    try:
        method(resource, items, onerror="continue")
    except (NitroAuthError, NitroPermissionError):
        raise
    except NitroApiError as exc:
        if exc.errorcode == BULK_FAILED:
            answers = list(exc.responses)
            _raise_refused_command(exc, answers)
            results = [Answer(_int(a.get("errorcode", 0)), str(a.get("message", "")))
                       for a in answers]
            # With onerror=exit the appliance stops at the first failure: the rest did not
            # happen.
            return (results + [Answer(-1, "not processed")] * len(items))[:len(items)]
        if len(items) == 1:
            return [_whole(exc)]
        logger.debug("bulk %s of %d failed as a whole (%s); one by one", resource, len(items),
                     exc)
        return [_single(method, resource, item) for item in items]
    return [DONE] * len(items)


def _single(method: Callable[..., Any], resource: str, item: JsonObj) -> Answer:
    try:
        method(resource, item)
    except (NitroAuthError, NitroPermissionError):
        raise
    except NitroApiError as exc:
        return _whole(exc)
    return DONE


def _whole(exc: NitroApiError) -> Answer:
    return Answer(exc.errorcode, exc.nitro_message, conflict=exc.http_status == 409)


def _raise_refused_command(exc: NitroApiError, answers: Sequence[JsonObj]) -> None:
    """Raise the first item's command-policy refusal in a 207 answer as NitroPermissionError."""
    for answer in answers:
        if _int(answer.get("errorcode", 0)) in PERMISSION_CODES:
            raise NitroApiError.from_body(exc.method, exc.resource, exc.http_status, answer)


# -- clean and sweep ----------------------------------------------------------------------


def clean(client: NitroClient, settings: Settings, challenges: Sequence[Challenge]) -> list[str]:
    """Unbind and delete exactly the objects :func:`deploy` made for these challenges.

    "Already gone" counts as success. Returns the problems met (empty when all is clean);
    the caller logs them and the sweep retries later.
    """
    point = BindPoint.from_settings(settings)
    names = [object_names(settings, c.token) for c in challenges]
    return _remove_objects(client, point, [pol for _, pol in names], [act for act, _ in names])


def clean_domains(client: NitroClient, settings: Settings, domains: Sequence[str]) -> list[str]:
    """Remove our challenge objects for these names, whatever their token (original CLI verb)."""
    wanted = {d.lower() for d in domains}
    policies = [p for p in _ours(client, settings, "responderpolicy")
                if _rule_host(p.get("rule")) in wanted]
    point = BindPoint.from_settings(settings)
    return _remove_objects(client, point, [str(p["name"]) for p in policies],
                           [str(p["action"]) for p in policies if p.get("action")])


@dataclass(frozen=True)
class Leftovers:
    """Challenge objects the sweep removes: policy names (as listed), then action names."""

    policies: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.policies or self.actions)


def leftovers(
    client: NitroClient,
    settings: Settings,
    *,
    owner: Optional[str] = None,
    now: Optional[float] = None,
    grace: float = SWEEP_GRACE_SECONDS,
) -> Leftovers:
    """What :func:`sweep` would remove now: ours at once, other installations' once stale.

    Objects with our prefix but without our comment marker are not ours to judge and stay.
    A policy's action goes with it when the action carries our prefix. Two list calls.
    """
    owner = owner or install_id()
    now = time.time() if now is None else now

    def doomed(obj: JsonObj) -> bool:
        mark = _owner_and_time(obj.get("comment"))
        return mark is not None and (mark[0] == owner or now - mark[1] > grace)

    policies = [p for p in _ours(client, settings, "responderpolicy") if doomed(p)]
    actions = [a for a in _ours(client, settings, "responderaction") if doomed(a)]
    action_names = ({str(a["name"]) for a in actions} |
                    {str(p["action"]) for p in policies
                     if str(p.get("action", "")).startswith(settings.challenge_prefix)})
    return Leftovers(tuple(str(p["name"]) for p in policies), tuple(sorted(action_names)))


def sweep(
    client: NitroClient,
    settings: Settings,
    *,
    owner: Optional[str] = None,
    now: Optional[float] = None,
    grace: float = SWEEP_GRACE_SECONDS,
) -> list[str]:
    """Remove the :func:`leftovers`; returns their names (policies first, then actions)."""
    found = leftovers(client, settings, owner=owner, now=now, grace=grace)
    if not found:
        return []
    policy_names, action_names = list(found.policies), list(found.actions)
    problems = _unbind_everywhere(client, settings, policy_names)
    problems += _remove(client, "responderpolicy", [{"name": n} for n in policy_names])
    problems += _remove(client, "responderaction", [{"name": n} for n in action_names])
    for problem in problems:
        logger.warning("sweep: %s", problem)
    logger.info("sweep removed %d policies and %d actions with prefix %s",
                len(policy_names), len(action_names), settings.challenge_prefix)
    return policy_names + action_names


def _ours(client: NitroClient, settings: Settings, resource: str) -> list[JsonObj]:
    # The whole list, filtered here: NITRO's regex filter (?filter=name:/^.../) is not matched
    # the same way by every firmware, and one that compared it literally would hide leftovers.
    items = client.get(resource)
    return [i for i in items if str(i.get("name", "")).startswith(settings.challenge_prefix)]


def _rule_host(rule: Any) -> Optional[str]:
    match = _HOST_IN_RULE.search(str(rule or ""))
    return match.group(1).lower() if match else None


def _unbind_everywhere(
    client: NitroClient, settings: Settings, policies: Sequence[str]
) -> list[str]:
    """Unbind from the configured bind point and from global REQ_OVERRIDE (an old setting)."""
    points = {BindPoint("global")}
    if settings.vserver_type != "global" and settings.vserver:
        points.add(BindPoint(settings.vserver_type, settings.vserver))
    problems: list[str] = []
    wanted = set(policies)
    for point in sorted(points, key=lambda p: p.kind):
        try:
            here = [b.policyname for b in point.read(client) if b.policyname in wanted]
        except ChallengeError as exc:
            problems.append(str(exc))
            continue
        problems += _remove(client, point.resource, [point.unbind_key(p) for p in here],
                            action="unbind", name_key=point.name_key)
    return problems


def _remove_objects(
    client: NitroClient, point: BindPoint, policies: Sequence[str], actions: Sequence[str]
) -> list[str]:
    """Unbind, then delete policies, then actions (the order the appliance requires)."""
    problems = _remove(client, point.resource, [point.unbind_key(p) for p in policies],
                       action="unbind", name_key=point.name_key)
    problems += _remove(client, "responderpolicy", [{"name": p} for p in policies])
    problems += _remove(client, "responderaction", [{"name": a} for a in actions])
    return problems


def _remove(
    client: NitroClient,
    resource: str,
    keys: Sequence[JsonObj],
    *,
    action: str = "rm",
    name_key: Optional[str] = "name",
) -> list[str]:
    """Remove many objects in one request; "already gone" is success; returns problems."""
    if not keys:
        return []
    try:
        client.remove_many(resource, keys, action=action, name_key=name_key)
        return []
    except NitroApiError as exc:
        if exc.errorcode == BULK_FAILED:
            answers = list(exc.responses)
            return [f"{action} {resource} {_key_text(key)}: {a.get('message', '')}"
                    for key, a in zip(keys, answers)
                    if _int(a.get("errorcode", 0)) not in GONE_CODES | {0}]
        if exc.errorcode in GONE_CODES and len(keys) == 1:
            return []
        if len(keys) == 1:
            return [f"{action} {resource} {_key_text(keys[0])}: {exc.nitro_message}"]
    # The one-by-one fallback stopped at a failing object: try each on its own.
    return [p for key in keys
            for p in _remove(client, resource, [key], action=action, name_key=name_key)]


def _key_text(key: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in key.items())


# -- pre-flight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What an HTTP GET of a challenge URL returned (status None: no HTTP answer at all)."""

    url: str
    status: Optional[int]
    body: bytes = b""
    location: Optional[str] = None
    error: Optional[str] = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect instead of following it: the redirect itself is the diagnosis."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def probe(settings: Settings, challenge: Challenge, timeout: float = PREFLIGHT_TIMEOUT) -> Probe:
    """GET the challenge URL like the CA would (directly, no proxy, no redirects followed)."""
    host, port = split_host_port(settings.preflight_address or challenge.domain, 80)
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port != 80 else "")
    url = f"http://{netloc}{challenge.path}"
    request = urllib.request.Request(
        url, headers={"Host": challenge.domain, "User-Agent": "ns-letsencrypt pre-flight"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as answer:
            return Probe(url, answer.status, answer.read(4096))
    except urllib.error.HTTPError as exc:
        return Probe(url, exc.code, exc.read(4096) if exc.fp else b"", exc.headers.get("Location"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(url, None, error=str(reason) or type(reason).__name__)


def preflight(
    client: NitroClient,
    settings: Settings,
    challenges: Sequence[Challenge],
    deployment: Deployment,
    *,
    fetch: Callable[[Settings, Challenge], Probe] = probe,
) -> list[str]:
    """Check each deployed challenge answers correctly before the CA is asked to validate.

    Returns the diagnoses (empty: all answer). ``settings.preflight``: ``off`` skips the check,
    ``warn`` logs the diagnoses, ``on`` raises.

    Raises:
        ChallengeError: with ``preflight=on``, when a challenge does not answer correctly.
    """
    if settings.preflight == "off":
        return []
    diagnoses = []
    # Probe concurrently: with many unreachable names the timeouts must not add up.
    with ThreadPoolExecutor(max_workers=min(PREFLIGHT_WORKERS, len(challenges) or 1)) as pool:
        results = list(pool.map(lambda c: fetch(settings, c), challenges))
    for challenge, result in zip(challenges, results):
        if result.status == 200 and result.body.strip() == challenge.key_authorization.encode():
            continue
        diagnoses.append(_diagnose(client, settings, challenge, result, deployment))
    if diagnoses and settings.preflight == "on":
        raise ChallengeError("pre-flight check failed: " + " | ".join(diagnoses),
                             "fix the traffic path first, or set NS_PREFLIGHT=warn to ask the "
                             "CA anyway")
    for diagnosis in diagnoses:
        logger.warning("pre-flight: %s", diagnosis)
    return diagnoses


def _diagnose(
    client: NitroClient, settings: Settings, challenge: Challenge, result: Probe,
    deployment: Deployment,
) -> str:
    head = f"{result.url} (Host: {challenge.domain})"
    point = deployment.point
    if result.status is None:
        return (f"{head}: no HTTP answer ({result.error}): check that DNS for "
                f"{challenge.domain} points at the NetScaler, and NAT and firewalls pass port 80 "
                f"to the vserver (or set NS_PREFLIGHT_ADDRESS to probe another way)")
    mine = deployment.priorities.get(object_names(settings, challenge.token)[1])
    earlier = [b for b in deployment.others if mine is None or b.priority < mine]
    if 300 <= result.status < 400:
        culprits = _redirecting_policies(client, point, earlier)
        who = (f"redirect policy {', '.join(culprits)} fires first"
               if culprits else "a redirect fires before our policy (a redirect policy, the "
               "vserver's redirect URL, or another vserver in front)")
        return (f"{head}: HTTP {result.status} to {result.location or '?'}: {who}; bind the "
                "challenge globally (NS_VSERVER_TYPE=global) or exempt "
                f"{CHALLENGE_PATH} from the redirect")
    if result.status == 404:
        where = (f"; policies bound before ours at {point.label}: " + _bound_text(earlier)
                 if earlier else "")
        path = ("the request reached no HTTP vserver of this appliance" if point.kind == "global"
                else f"traffic for {challenge.domain} reaches another vserver than {point.label}")
        return f"{head}: HTTP 404: our policy did not answer: it is shadowed, or {path}{where}"
    snippet = result.body[:80].decode("utf-8", "replace")
    return (f"{head}: HTTP {result.status} with body {snippet!r} instead of the key "
            f"authorization: another policy or the backend answers first"
            + (f"; policies bound before ours at {point.label}: {_bound_text(earlier)}"
               if earlier else ""))


def _bound_text(bound: Sequence[Bound]) -> str:
    return ", ".join(f"{b.policyname} (priority {b.priority})" for b in bound)


def _redirecting_policies(client: NitroClient, point: BindPoint,
                          earlier: Sequence[Bound]) -> list[str]:
    """Names of redirecting responder policies evaluated before ours (looked up via NITRO)."""
    candidates = [f"{b.policyname} (priority {b.priority} at {point.label})" for b in earlier
                  if _redirects(client, b.policyname)]
    if point.kind != "global":
        # Global REQ_OVERRIDE policies run before any vserver policy.
        candidates += [f"{b.policyname} (global REQ_OVERRIDE priority {b.priority})"
                       for b in BindPoint("global").read(client)
                       if _redirects(client, b.policyname)]
    return candidates


def _redirects(client: NitroClient, policy: str) -> bool:
    found = client.get_one("responderpolicy", policy)
    action = str((found or {}).get("action", ""))
    if not action or action.upper() in ("NOOP", "RESET", "DROP"):
        return False
    target = client.get_one("responderaction", action) or {}
    kind = str(target.get("type", "")).lower()
    return kind == "redirect" or (kind == "respondwith" and bool(_REDIRECT_STATUS.search(
        str(target.get("target", "")))))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1

