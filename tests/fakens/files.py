"""The fake appliance's file system and the NITRO ``systemfile`` resource (nitro-reference §3).

Owns the in-memory directories (``location -> name -> bytes``) that ``sslcertkey`` reads its
certificate and key files from, and upload / list / read / delete through NITRO. File operations
do not change the running configuration (core leaves ``systemfile`` out of "config changed").

Choices where the reference says "unconfirmed":

- GET or DELETE of a missing file (or a missing directory) answers 404 / 258
  ``No such resource [fileName, <name>]`` (like other missing resources; §3.3 guesses 599/258).
- A ``/`` in the file name, a relative location, a non-BASE64 encoding, undecodable content and
  a file larger than 2 MB answer 599 / 1097 ``Invalid argument value [...]``.
- Uploading into a directory that does not exist yet creates it (the appliance's directories are
  not modelled beyond the ones files live in).
- The CLI rendering used for command policies never contains the file content (it may be a
  private key): ``add system file <name> -fileLocation <location as sent>``.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from tests.fakens.cmdpolicy import quote
from tests.fakens.core import Call, NitroFault, State, handler

SSL_DIR = "/nsconfig/ssl"
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NAME = 63
MAX_LOCATION = 127
# Directories every appliance has; listing a parent shows these as DIRECTORY entries.
DEFAULT_DIRS = ("/nsconfig", SSL_DIR, "/nsconfig/ssl/certs", "/var", "/var/tmp")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_UPLOAD_FIELDS = frozenset({"filename", "filelocation", "filecontent", "fileencoding"})


@dataclass
class StoredFile:
    """One file on the appliance's disk."""

    content: bytes
    mtime: float = field(default_factory=time.time)


@dataclass
class FileStore:
    """All directories and files; ``dirs`` maps a normalised location to its files."""

    dirs: dict[str, dict[str, StoredFile]] = field(
        default_factory=lambda: {d: {} for d in DEFAULT_DIRS})

    def read(self, location: str, name: str) -> Optional[bytes]:
        stored = self.dirs.get(normalise_location(location), {}).get(name)
        return None if stored is None else stored.content

    def write(self, location: str, name: str, content: bytes) -> None:
        self.dirs.setdefault(normalise_location(location), {})[name] = StoredFile(content)

    def contents(self, location: str) -> dict[str, bytes]:
        """Name -> bytes of every file in one directory (a copy)."""
        return {n: f.content for n, f in self.dirs.get(normalise_location(location), {}).items()}

    def remove(self, location: str, name: str) -> bool:
        return self.dirs.get(normalise_location(location), {}).pop(name, None) is not None


def file_store(state: State) -> FileStore:
    """The appliance's files, created on first use (callers hold ``state.lock``)."""
    store = state.ext.get("files")
    if not isinstance(store, FileStore):
        store = FileStore()
        state.ext["files"] = store
    return store


def normalise_location(location: str) -> str:
    """``/nsconfig/ssl/`` and ``/nsconfig/ssl`` name the same directory."""
    stripped = location.rstrip("/")
    return stripped or "/"


def split_path(path: str) -> tuple[str, str]:
    """A certkey's ``cert``/``key`` value -> (location, name); plain names live in /nsconfig/ssl."""
    if "/" not in path:
        return SSL_DIR, path
    location, _, name = path.rpartition("/")
    return normalise_location(location or "/"), name


def appliance_time(epoch: float) -> str:
    """Time stamps as the appliance prints them: ``Thu Mar  6 12:00:00 2025`` (UTC)."""
    t = time.gmtime(epoch)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}")


# --- CLI renderings (nitro-reference §8.2) ---------------------------------------------------

def _body(call: Call) -> dict[str, Any]:
    return call.body if isinstance(call.body, dict) else {}


def _file_name(call: Call) -> str:
    return call.name or str(_body(call).get("filename") or call.args.get("filename") or "")


def _location_arg(call: Call) -> str:
    location = _body(call).get("filelocation") or call.args.get("filelocation")
    return f" -fileLocation {quote(str(location))}" if location else ""


def _cli_add(call: Call) -> str:
    return f"add system file {quote(_file_name(call))}{_location_arg(call)}"


def _cli_show(call: Call) -> str:
    name = _file_name(call)
    return f"show system file{' ' + quote(name) if name else ''}{_location_arg(call)}"


def _cli_rm(call: Call) -> str:
    return f"rm system file {quote(_file_name(call))}{_location_arg(call)}"


# --- validation -----------------------------------------------------------------------------

def _invalid(argument: str, detail: str = "") -> NitroFault:
    suffix = f", {detail}" if detail else ""
    return NitroFault(599, 1097, f"Invalid argument value [{argument}{suffix}]")


def _missing_argument() -> NitroFault:
    return NitroFault(599, 1095, "Required argument missing")


def _no_such_file(name: str) -> NitroFault:
    return NitroFault(404, 258, f"No such resource [fileName, {name}]")


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise _missing_argument()
    if len(name) > MAX_NAME:
        raise NitroFault(599, 1106, f"String length exceeds maximum [fileName, {MAX_NAME}]")
    if "/" in name or name in (".", ".."):
        raise _invalid("fileName", name)
    return name


def _checked_location(location: Any) -> str:
    if not isinstance(location, str) or not location:
        raise _missing_argument()
    if len(location) > MAX_LOCATION:
        raise NitroFault(599, 1106, f"String length exceeds maximum [fileLocation, {MAX_LOCATION}]")
    if not location.startswith("/") or "/../" in location + "/":
        raise _invalid("fileLocation", location)
    return normalise_location(location)


def _decoded_content(body: dict[str, Any]) -> bytes:
    encoding = str(body.get("fileencoding", "BASE64"))
    if encoding.upper() != "BASE64":
        raise _invalid("fileEncoding", encoding)
    content = body.get("filecontent")
    if not isinstance(content, str):
        raise _missing_argument()
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("fileContent") from None
    if len(data) > MAX_FILE_BYTES:
        raise _invalid("fileContent", "file size exceeds 2 MB")
    return data


# --- handlers -------------------------------------------------------------------------------

@handler("POST", "systemfile", status=201, cli=_cli_add)
def upload(state: State, call: Call) -> None:
    body = _body(call)
    unknown = sorted(set(body) - _UPLOAD_FIELDS)
    if unknown:
        raise NitroFault(599, 1090, "No such argument")
    name = _checked_name(body.get("filename"))
    location = _checked_location(body.get("filelocation"))
    content = _decoded_content(body)
    store = file_store(state)
    if store.read(location, name) is not None:
        raise NitroFault(409, 1642, "Cannot create output file. File already exists")
    store.write(location, name, content)


@handler("GET", "systemfile", cli=_cli_show)
def show(state: State, call: Call) -> Optional[dict[str, Any]]:
    location = _checked_location(call.args.get("filelocation"))
    name = call.name or call.args.get("filename")
    store = file_store(state)
    if location not in store.dirs:
        raise _no_such_file(name or location)
    if name:
        stored = store.dirs[location].get(name)
        if stored is None:
            raise _no_such_file(name)
        one = _describe(location, name, stored)
        one["filecontent"] = base64.b64encode(stored.content).decode("ascii")
        one["fileencoding"] = "BASE64"
        return {"systemfile": [one]}
    return {"systemfile": _listing(store, location)}


@handler("DELETE", "systemfile", cli=_cli_rm)
def remove(state: State, call: Call) -> None:
    location = _checked_location(call.args.get("filelocation"))
    name = call.name or call.args.get("filename")
    if not name:
        raise _missing_argument()
    if not file_store(state).remove(location, name):
        raise _no_such_file(name)


def _describe(location: str, name: str, stored: StoredFile) -> dict[str, Any]:
    return {"filename": name, "filelocation": location, "filesize": len(stored.content),
            "fileaccesstime": appliance_time(stored.mtime),
            "filemodifiedtime": appliance_time(stored.mtime)}


def _listing(store: FileStore, location: str) -> list[dict[str, Any]]:
    prefix = location.rstrip("/") + "/"
    subdirs = sorted(d[len(prefix):] for d in store.dirs
                     if d.startswith(prefix) and "/" not in d[len(prefix):])
    entries: list[dict[str, Any]] = [
        {"filename": sub, "filelocation": location, "filemode": ["DIRECTORY"]} for sub in subdirs]
    entries += [_describe(location, name, stored)
                for name, stored in sorted(store.dirs[location].items())]
    return entries
