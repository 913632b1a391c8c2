"""Responder resources: actions, policies and their bindings (nitro-reference §5).

Actions and policies are stored as plain field dicts in ``State.responderactions`` /
``State.responderpolicies``; bindings as :class:`Binding` lists in ``State.bindings`` keyed by
bind point (``lb:<vserver>``, ``cs:<vserver>``, ``global:<type>``). Expressions are parsed at
add time so that a rule or target the data plane could not evaluate is refused like the
appliance refuses it.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable, Optional

from tests.fakens.appliance import find_vserver
from tests.fakens.cmdpolicy import field, join, name_of, options, quote
from tests.fakens.core import Binding, Call, NitroFault, State, VServer, handler
from tests.fakens.expr import ExprError, parse_rule, parse_text

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.:@= -]*$")
MAX_NAME = 127
MAX_PRIORITY = 2147483647
ACTION_TYPES = ("respondwith", "redirect", "noop", "respondwithhtmlpage", "sqlresponse_ok",
                "sqlresponse_error", "resetconnection", "dropconnection")
TARGET_TYPES = ("respondwith", "redirect")
BUILTIN_ACTIONS = ("NOOP", "RESET", "DROP")
ACTION_FIELDS = ("name", "type", "target", "htmlpage", "bypasssafetycheck", "comment",
                 "responsestatuscode", "reasonphrase", "headers")
POLICY_FIELDS = ("name", "rule", "action", "undefaction", "comment", "logaction",
                 "appflowaction")
BINDING_FIELDS = ("name", "policyname", "priority", "gotopriorityexpression", "bindpoint",
                  "invoke", "labeltype", "labelname", "targetlbvserver", "type",
                  "globalbindtype")
GLOBAL_TYPE_RE = re.compile(r"^(([A-Z0-9]+_)?REQ_(OVERRIDE|DEFAULT)|OVERRIDE|DEFAULT)$")
DEFAULT_GLOBAL_TYPE = "REQ_DEFAULT"
BULK_REMOVE_ACTIONS = ("rm", "delete")


# ---------------------------------------------------------------- validation helpers

def body(call: Call) -> dict[str, Any]:
    """The request object, or the appliance's complaint when there is none."""
    if not isinstance(call.body, dict):
        raise NitroFault(400, 1233, "Invalid JSON input")
    return call.body


def require(obj: dict[str, Any], key: str) -> Any:
    """A required argument, or 599/1095."""
    value = obj.get(key)
    if value is None or value == "":
        raise NitroFault(599, 1095, f"Required argument missing [{key}]")
    return value


def reject_unknown(obj: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Unknown properties are refused with 1090, like the appliance does."""
    for key in obj:
        if key not in allowed:
            raise NitroFault(599, 1090, f"No such argument [{key}]")


def check_name(name: Any) -> str:
    """Apply the naming rules of nitro-reference §5.4."""
    text = str(name)
    if len(text) > MAX_NAME:
        raise NitroFault(599, 1106, f"String length exceeds maximum [name, {MAX_NAME}]")
    if not NAME_RE.match(text):
        raise NitroFault(599, 1075, "Invalid name; names must begin with an alphanumeric or "
                                    f"underscore character [name, {text}]")
    return text


def parse_priority(value: Any) -> int:
    """A binding priority (1..2147483647), or 599/1097."""
    try:
        priority = int(str(value))
    except ValueError:
        raise NitroFault(599, 1097, f"Invalid argument value [priority, {value}]") from None
    if not 1 <= priority <= MAX_PRIORITY:
        raise NitroFault(599, 1097, f"Invalid argument value [priority, {value}]")
    return priority


# ---------------------------------------------------------------- responderaction

def _check_target(kind: str, target: Any) -> None:
    if kind not in TARGET_TYPES:
        return
    if target is None or target == "":
        raise NitroFault(599, 1095, "Required argument missing [target]")
    try:
        parse_text(str(target))
    except ExprError as exc:
        raise NitroFault(599, 2824, f"Invalid responder action [target, {exc}]") from None


def _action_cli(verb: str) -> Callable[[Call], str]:
    def render(call: Call) -> str:
        name = name_of(call)
        if verb in ("rm", "show"):
            return join(verb, "responder action", quote(name) if name else None)
        target = field(call, "target")
        positional = (field(call, "type"), quote(target) if target is not None else None)
        if verb == "set":
            positional = (None, f"-target {quote(target)}" if target is not None else None)
        return join(verb, "responder action", quote(name or ""), *positional,
                    options(call, {"htmlpage": "htmlpage", "comment": "comment",
                                   "bypasssafetycheck": "bypassSafetyCheck"}))

    return render


@handler("POST", "responderaction", status=201, cli=_action_cli("add"))
def add_action(state: State, call: Call) -> None:
    obj = body(call)
    reject_unknown(obj, ACTION_FIELDS)
    name = check_name(require(obj, "name"))
    kind = str(require(obj, "type")).lower()
    if kind not in ACTION_TYPES:
        raise NitroFault(599, 1097, f"Invalid argument value [type, {obj['type']}]")
    if name in state.responderactions or name.upper() in BUILTIN_ACTIONS:
        raise NitroFault(409, 273, f"Resource already exists [name, {name}]")
    _check_target(kind, obj.get("target"))
    stored = {k: v for k, v in obj.items() if v is not None}
    stored.update(name=name, type=kind)
    state.responderactions[name] = stored


@handler("PUT", "responderaction", cli=_action_cli("set"))
def set_action(state: State, call: Call) -> None:
    obj = body(call)
    reject_unknown(obj, ACTION_FIELDS)
    name = str(require(obj, "name"))
    current = _existing_action(state, name)
    _check_target(current["type"], obj.get("target", current.get("target")))
    current.update({k: v for k, v in obj.items() if k != "type" and v is not None})


def _existing_action(state: State, name: Optional[str]) -> dict[str, Any]:
    if name is None or name not in state.responderactions:
        raise NitroFault(404, 258, f"No such resource [name, {name}]")
    return state.responderactions[name]


def action_json(state: State, action: dict[str, Any]) -> dict[str, Any]:
    """An action as GET responderaction returns it (counters are strings)."""
    users = sum(1 for p in state.responderpolicies.values() if p["action"] == action["name"])
    shown = {"bypasssafetycheck": "NO", **action}
    shown.update(hits="0", undefhits="0", referencecount=str(users))
    return shown


@handler("GET", "responderaction", cli=_action_cli("show"))
def get_action(state: State, call: Call) -> dict[str, Any]:
    if call.name is not None:
        return {"responderaction": [action_json(state, _existing_action(state, call.name))]}
    return {"responderaction": [action_json(state, a) for a in state.responderactions.values()]}


@handler("DELETE", "responderaction", cli=_action_cli("rm"))
def delete_action(state: State, call: Call) -> None:
    name = call.name
    _existing_action(state, name)
    if any(p["action"] == name for p in state.responderpolicies.values()):
        raise NitroFault(599, 832, "Action bound to policy can not be deleted.")
    del state.responderactions[str(name)]


# ---------------------------------------------------------------- responderpolicy

def _check_rule(rule: Any) -> None:
    try:
        parse_rule(str(rule))
    except ExprError as exc:
        raise NitroFault(599, 2843, f"Invalid expression [rule, {exc}]") from None


def _check_policy_action(state: State, action: Any) -> None:
    if str(action).upper() in BUILTIN_ACTIONS or action in state.responderactions:
        return
    raise NitroFault(599, 258, f"No such resource [action, {action}]")


def _policy_cli(verb: str) -> Callable[[Call], str]:
    def render(call: Call) -> str:
        name = name_of(call)
        if verb in ("rm", "show"):
            return join(verb, "responder policy", quote(name) if name else None)
        rule, action = field(call, "rule"), field(call, "action")
        if verb == "set":
            return join("set responder policy", quote(name or ""),
                        options(call, {"rule": "rule", "action": "action", "comment": "comment"}))
        return join("add responder policy", quote(name or ""),
                    quote(rule) if rule is not None else None, quote(action or ""),
                    options(call, {"undefaction": "undefAction", "comment": "comment",
                                   "logaction": "logAction"}))

    return render


@handler("POST", "responderpolicy", status=201, cli=_policy_cli("add"))
def add_policy(state: State, call: Call) -> None:
    obj = body(call)
    reject_unknown(obj, POLICY_FIELDS)
    name = check_name(require(obj, "name"))
    rule, action = require(obj, "rule"), require(obj, "action")
    if name in state.responderpolicies:
        raise NitroFault(409, 3094, "Policy name already in use [by a responder policy]")
    _check_rule(rule)
    _check_policy_action(state, action)
    state.responderpolicies[name] = {**{k: v for k, v in obj.items() if v is not None},
                                     "name": name}


@handler("PUT", "responderpolicy", cli=_policy_cli("set"))
def set_policy(state: State, call: Call) -> None:
    obj = body(call)
    reject_unknown(obj, POLICY_FIELDS)
    current = _existing_policy(state, str(require(obj, "name")))
    if "rule" in obj:
        _check_rule(obj["rule"])
    if "action" in obj:
        _check_policy_action(state, obj["action"])
    current.update({k: v for k, v in obj.items() if v is not None})


def _existing_policy(state: State, name: Optional[str]) -> dict[str, Any]:
    if name is None or name not in state.responderpolicies:
        raise NitroFault(404, 2054, "No such policy exists")
    return state.responderpolicies[name]


def policy_json(policy: dict[str, Any]) -> dict[str, Any]:
    """A policy as GET responderpolicy returns it."""
    return {"undefaction": "-", **policy, "hits": "0", "undefhits": "0", "builtin": []}


@handler("GET", "responderpolicy", cli=_policy_cli("show"))
def get_policy(state: State, call: Call) -> dict[str, Any]:
    if call.name is not None:
        return {"responderpolicy": [policy_json(_existing_policy(state, call.name))]}
    return {"responderpolicy": [policy_json(p) for p in state.responderpolicies.values()]}


def is_bound(state: State, policyname: str) -> bool:
    """Whether the policy is bound anywhere."""
    return any(b.policyname == policyname for bs in state.bindings.values() for b in bs)


@handler("DELETE", "responderpolicy", cli=_policy_cli("rm"))
def delete_policy(state: State, call: Call) -> None:
    _existing_policy(state, call.name)
    if is_bound(state, str(call.name)):
        raise NitroFault(599, 810, "Bound policy cannot be removed.")
    del state.responderpolicies[str(call.name)]


# ---------------------------------------------------------------- bindings: shared logic

def _goto(value: Any) -> str:
    text = str(value or "END").strip()
    return text.upper() if text.upper() in ("END", "NEXT", "USE_INVOCATION_RESULT") else text


def _bind(state: State, point: str, obj: dict[str, Any]) -> None:
    policyname = str(require(obj, "policyname"))
    _existing_policy(state, policyname)
    priority = parse_priority(require(obj, "priority"))
    bound = state.bindings.setdefault(point, [])
    if any(b.policyname == policyname for b in bound):
        raise NitroFault(409, 273, f"Resource already exists [policyname, {policyname}]")
    if any(b.priority == priority for b in bound):
        raise NitroFault(599, 3041, "A policy is already bound to the specified priority")
    bound.append(Binding(policyname, priority, _goto(obj.get("gotopriorityexpression")),
                         invoke=bool(obj.get("invoke")), labeltype=obj.get("labeltype"),
                         labelname=obj.get("labelname")))
    bound.sort(key=lambda b: b.priority)


def _unbind(state: State, point: str, policyname: Any) -> None:
    if policyname is None or policyname == "":
        raise NitroFault(599, 1095, "Required argument missing [policyname]")
    bound = state.bindings.get(point, [])
    for binding in bound:
        if binding.policyname == policyname:
            bound.remove(binding)
            return
    raise NitroFault(599, 2097, "Policy not bound")


def binding_json(binding: Binding, extra: dict[str, Any]) -> dict[str, Any]:
    """A binding as the binding GETs return it: priority is a string."""
    shown: dict[str, Any] = {**extra, "policyname": binding.policyname,
                             "priority": str(binding.priority),
                             "gotopriorityexpression": binding.gotopriorityexpression,
                             "invoke": binding.invoke}
    if binding.labeltype:
        shown.update(labeltype=binding.labeltype, labelname=binding.labelname)
    return shown


def removal_call(call: Call, key: str = "name") -> Call:
    """Turn one item of a bulk ``?action=rm|unbind`` POST into the equivalent DELETE call."""
    obj = body(call)
    rest = {k: str(v) for k, v in obj.items() if k != key and v is not None}
    return replace(call, method="DELETE", action=None, name=obj.get(key),
                   args={**call.args, **rest}, body=None)


# ---------------------------------------------------------------- vserver bindings

def _register_vserver_bindings(kind: str, tables: Callable[[State], dict[str, VServer]]) -> None:
    """Register bind, show, unbind and bulk unbind for ``<kind>vserver_responderpolicy_binding``."""
    resource = f"{kind}vserver_responderpolicy_binding"

    def point(name: str) -> str:
        return f"{kind}:{name}"

    def bind_cli(call: Call) -> str:
        return join("bind", kind, "vserver", quote(name_of(call) or ""),
                    f"-policyName {quote(field(call, 'policyname') or '')}",
                    options(call, {"priority": "priority"}),
                    f"-gotoPriorityExpression {_goto(field(call, 'gotopriorityexpression'))}")

    def unbind_cli(call: Call) -> str:
        return join("unbind", kind, "vserver", quote(name_of(call) or ""),
                    f"-policyName {quote(call.args.get('policyname', ''))}")

    def show_cli(call: Call) -> str:
        return join("show", kind, "vserver", quote(call.name) if call.name else None)

    def bind(state: State, call: Call) -> None:
        obj = body(call)
        reject_unknown(obj, BINDING_FIELDS)
        name = call.name or obj.get("name")
        if not name:
            raise NitroFault(599, 1095, "Required argument missing [name]")
        find_vserver(tables(state), str(name))
        _bind(state, point(str(name)), obj)

    def get(state: State, call: Call) -> dict[str, Any]:
        if call.name is None:
            if call.query.get("bulkbindings", "").lower() != "yes":
                raise NitroFault(599, 1095, "Required argument missing [name]")
            names = list(tables(state))
        else:
            names = [find_vserver(tables(state), call.name).name]
        found = [binding_json(b, {"name": n, "bindpoint": "REQUEST"})
                 for n in names for b in state.bindings.get(point(n), [])]
        return {resource: found}

    def delete(state: State, call: Call) -> None:
        if not call.name:
            raise NitroFault(599, 1095, "Required argument missing [name]")
        find_vserver(tables(state), call.name)
        _unbind(state, point(call.name), call.args.get("policyname"))

    def bulk_unbind(state: State, call: Call) -> None:
        delete(state, removal_call(call))

    handler("PUT", resource, status=201, cli=bind_cli)(bind)
    handler("POST", resource, status=201, cli=bind_cli)(bind)
    handler("GET", resource, cli=show_cli)(get)
    handler("DELETE", resource, cli=unbind_cli)(delete)
    handler("POST", resource, "unbind", cli=lambda c: unbind_cli(removal_call(c)))(bulk_unbind)


_register_vserver_bindings("lb", lambda state: state.lbvservers)
_register_vserver_bindings("cs", lambda state: state.csvservers)


# ---------------------------------------------------------------- global bindings

GLOBAL = "responderglobal_responderpolicy_binding"


def _global_type(value: Any) -> str:
    kind = str(value or DEFAULT_GLOBAL_TYPE).upper()
    if not GLOBAL_TYPE_RE.match(kind):
        raise NitroFault(599, 1097, f"Invalid argument value [type, {value}]")
    return kind


def _global_bind_cli(call: Call) -> str:
    return join("bind responder global", quote(field(call, "policyname") or ""),
                field(call, "priority"), _goto(field(call, "gotopriorityexpression")),
                f"-type {_global_type(field(call, 'type'))}")


def _global_unbind_cli(call: Call) -> str:
    return join("unbind responder global", quote(call.args.get("policyname", "")),
                f"-type {str(call.args.get('type') or DEFAULT_GLOBAL_TYPE).upper()}")


def _global_show_cli(call: Call) -> str:
    kind = call.args.get("type")
    return join("show responder global", f"-type {kind.upper()}" if kind else None)


@handler("PUT", GLOBAL, status=201, cli=_global_bind_cli)
@handler("POST", GLOBAL, status=201, cli=_global_bind_cli)
def bind_global(state: State, call: Call) -> None:
    obj = body(call)
    reject_unknown(obj, BINDING_FIELDS)
    kind = _global_type(obj.get("type"))
    policyname = str(require(obj, "policyname"))
    if any(is_point_bound(state, p, policyname) for p in state.bindings if p.startswith("global:")):
        raise NitroFault(409, 273, f"Resource already exists [policyname, {policyname}]")
    _bind(state, f"global:{kind}", obj)


def is_point_bound(state: State, point: str, policyname: str) -> bool:
    """Whether ``policyname`` is bound at ``point``."""
    return any(b.policyname == policyname for b in state.bindings.get(point, []))


@handler("GET", GLOBAL, cli=_global_show_cli)
def get_global(state: State, call: Call) -> dict[str, Any]:
    # Without args=type the appliance returns nothing (nitro-reference §5.7, ANS #378).
    if not call.args.get("type"):
        return {}
    kind = _global_type(call.args["type"])
    found = [binding_json(b, {"type": kind, "globalbindtype": "SYSTEM_GLOBAL"})
             for b in state.bindings.get(f"global:{kind}", [])]
    return {GLOBAL: found}


@handler("DELETE", GLOBAL, cli=_global_unbind_cli)
def unbind_global(state: State, call: Call) -> None:
    kind = _global_type(call.args.get("type"))
    _unbind(state, f"global:{kind}", call.args.get("policyname"))


@handler("POST", GLOBAL, "unbind", cli=lambda c: _global_unbind_cli(removal_call(c, "")))
def bulk_unbind_global(state: State, call: Call) -> None:
    unbind_global(state, removal_call(call, ""))


# ---------------------------------------------------------------- bulk removal of objects

def _bulk_remove_actions(state: State, call: Call) -> None:
    delete_action(state, removal_call(call))


def _bulk_remove_policies(state: State, call: Call) -> None:
    delete_policy(state, removal_call(call))


def _removal_cli(render: Callable[[Call], str]) -> Callable[[Call], str]:
    return lambda call: render(removal_call(call))


for _verb in BULK_REMOVE_ACTIONS:
    handler("POST", "responderaction", _verb,
            cli=_removal_cli(_action_cli("rm")))(_bulk_remove_actions)
    handler("POST", "responderpolicy", _verb,
            cli=_removal_cli(_policy_cli("rm")))(_bulk_remove_policies)
