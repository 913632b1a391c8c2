#!/usr/bin/env python3
"""ns-copytons.py: the original tool's command-line verbs, kept for existing users and habits.

``ns-copytons.py test`` runs exactly ``ns-letsencrypt test``. ``challenge TOKEN_FILENAME
TOKEN_VALUE DOMAIN [counter]`` and ``clean DOMAIN...`` keep the original's argument order and run
``ns-letsencrypt challenge`` / ``clean`` (the counter is ignored: free priorities are read from
the appliance). ``save CERT KEY CHAIN DOMAIN`` runs ``ns-letsencrypt deploy`` (then saves) and
``saveconfig`` runs ``ns-letsencrypt save-config``. ``create`` and these verbs with other
arguments name their replacement and exit 2, as do challenge and clean with unusable arguments.
Works from any directory and through a symlink: the package is found next to the real file.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: ns-copytons.py {test,challenge,clean,save,saveconfig,create} [options]"

# verb of the original tool -> the ns-letsencrypt command that replaces it
REPLACED = {
    "challenge": "ns-letsencrypt challenge DOMAIN TOKEN KEY_AUTH",
    "clean": "ns-letsencrypt clean DOMAIN",
    "save": "ns-letsencrypt hook deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAIN CHAINFILE",
    "create": "ns-letsencrypt hook deploy_cert DOMAIN KEYFILE CERTFILE FULLCHAIN CHAINFILE",
    "saveconfig": "ns-letsencrypt hook exit_hook, which saves the configuration if it changed",
}

TEST_OPTIONS = ("--json", "--show-fingerprint")
# verbs that still work with the original's arguments -> how many they take:
# ``save CERT KEY CHAIN DOMAIN`` deploys one certificate, ``saveconfig`` saves the configuration
DEPLOY_VERBS = {"save": 4, "saveconfig": 0}


def main(argv: list[str]) -> int:
    """Dispatch one legacy verb; returns the exit status."""
    if not argv or argv[0] not in ("test", "-h", "--help", *REPLACED):
        given = f"unknown verb '{argv[0]}'" if argv else "no verb given"
        print(f"{USAGE}\nns-copytons.py: error: {given}", file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb in ("-h", "--help"):
        print(f"{USAGE}\n\n'test' checks the appliance (same as 'ns-letsencrypt test'); "
              "the other verbs name the ns-letsencrypt command that replaces them.")
        return 0
    if verb in DEPLOY_VERBS and len(rest) == DEPLOY_VERBS[verb]:
        return _run_deploy_verb(verb, rest)
    legacy = _legacy_challenge_argv(verb, rest)
    if legacy:
        return _ns_letsencrypt(legacy)
    if verb in REPLACED:
        print(f"ns-copytons.py {verb}: this verb is retired; use: {REPLACED[verb]} "
              "(dehydrated runs these through hooks/ns-hook.sh)", file=sys.stderr)
        return 2
    # Global options (--url, --env-file ...) go before the command for argparse.
    own = [arg for arg in rest if arg in TEST_OPTIONS]
    return _ns_letsencrypt([*(arg for arg in rest if arg not in TEST_OPTIONS), "test", *own])


def _legacy_challenge_argv(verb: str, rest: list[str]) -> list[str]:
    """The ns-letsencrypt argv for the original's challenge/clean arguments ([] if unusable)."""
    if verb == "challenge" and len(rest) in (3, 4):
        token, key_authorization, domain = rest[:3]
        return ["challenge", domain, token, key_authorization]
    if verb == "clean" and rest and all("." in name for name in rest):
        return ["clean", *rest]
    return []


def _ns_letsencrypt(argv: list[str]) -> int:
    """Run ns-letsencrypt from the package next to this file."""
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    from ns_letsencrypt.cli import main as ns_letsencrypt_main

    return ns_letsencrypt_main(argv)


def _run_deploy_verb(verb: str, rest: list[str]) -> int:
    """``save CERT KEY CHAIN DOMAIN`` -> ``deploy``; ``saveconfig`` -> ``save-config``."""
    if verb == "save":
        cert, key, chain, domain = rest
        return _ns_letsencrypt(["deploy", "--domain", domain, cert, key, chain])
    return _ns_letsencrypt(["save-config"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
