"""``ns-letsencrypt end-run``: end the NITRO session a scheduled run kept open.

The cron scripts run it from their exit trap when the run directory still holds a session
(``exit_hook`` ends the session itself when nothing follows it), and at their start for the
directory of a run that was killed before its trap could run. It logs out and removes the
session file; the session id is read from the file, never from argv or the environment.
Ending the session is best effort: a session that cannot be logged out expires by itself
(:data:`runstate.SESSION_TIMEOUT`), so this command only fails on a usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Callable

from . import runstate
from .config import Settings
from .errors import ConfigError, NsLeError
from .session import open_client

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", metavar="DIR",
                        help=f"the run directory (default: ${runstate.RUN_DIR_ENV})")


def run(args: argparse.Namespace, load_settings: Callable[[], Settings]) -> int:
    directory = args.run_dir or os.environ.get(runstate.RUN_DIR_ENV)
    if not directory:
        raise ConfigError("end-run needs the run directory",
                          hint=f"pass --run-dir or set {runstate.RUN_DIR_ENV}")
    left = sorted(Path(directory).glob("session-*.json"))
    if not left:
        return 0
    try:
        settings = load_settings()
    except NsLeError as exc:
        logger.warning("could not log out of the run's NITRO session (%s); it expires after "
                       "%d s without use", exc, runstate.SESSION_TIMEOUT)
        settings = None
    for target in (settings.targets or (settings,)) if settings else ():  # NS_TARGETS: each
        try:
            state = runstate.RunState.open(Path(directory), target.url, target.username)
            if state is not None and state.session_file.exists():
                open_client(target, run=state).end_session()
                logger.debug("ended the run's NITRO session")
        except NsLeError as exc:
            logger.warning("could not log out of the run's NITRO session (%s); it expires "
                           "after %d s without use", exc, runstate.SESSION_TIMEOUT)
    for path in left:  # whatever could not be ended is forgotten all the same
        path.unlink(missing_ok=True)
    return 0
