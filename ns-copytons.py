#!/usr/bin/env python3
"""ns-copytons.py: the original tool's command-line verbs, kept for existing users and habits.

``ns-copytons.py test`` runs exactly ``ns-letsencrypt test``. The other verbs of the original
(challenge, clean, save, saveconfig, create) now belong to ``ns-letsencrypt`` commands that
dehydrated calls through ``hooks/ns-hook.sh``; here they name their replacement and exit 2.
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
    if verb in REPLACED:
        print(f"ns-copytons.py {verb}: this verb is retired; use: {REPLACED[verb]} "
              "(dehydrated runs these through hooks/ns-hook.sh)", file=sys.stderr)
        return 2
    sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
    from ns_letsencrypt.cli import main as ns_letsencrypt_main

    # Global options (--url, --env-file ...) go before the command for argparse.
    own = [arg for arg in rest if arg in TEST_OPTIONS]
    return ns_letsencrypt_main([*(arg for arg in rest if arg not in TEST_OPTIONS), "test", *own])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
