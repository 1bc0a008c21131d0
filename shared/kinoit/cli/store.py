"""CLI commands of the content store: add, cat, dag put/get, pin add/rm/ls, gc, car export/import.

Every command talks to the store that ``open_store`` picks from the environment
(the embedded store under ``$KINOIT_HOME`` by default, Kubo when
``KINOIT_IPFS_API`` is set), so the CLI and every other kinoit process share it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TextIO

from kinoit.config import load_settings
from kinoit.errors import InvalidParameter, NotFound
from kinoit.store import Store, open_store
from kinoit.store.base import atomic_output
from kinoit.store.dagcbor import from_dag_json, to_dag_json

# Files smaller than this finish before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 32 << 20
# Redraw the progress bar at most this often.
PROGRESS_INTERVAL_SECONDS = 0.2


def _store() -> Store:
    return open_store(load_settings())


class _ProgressReader:
    """Wraps a binary stream and draws a one-line progress bar on ``out`` while it is read."""

    def __init__(self, stream: IO[bytes], total: int, out: TextIO) -> None:
        self._stream = stream
        self._total = total
        self._out = out
        self._done = 0
        self._last = 0.0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._done += len(data)
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_SECONDS or not data:
            self._last = now
            self._draw()
        return data

    def _draw(self) -> None:
        fraction = min(1.0, self._done / self._total) if self._total else 1.0
        width = 30
        bar = "#" * int(fraction * width)
        self._out.write(
            f"\radding [{bar:<{width}}] {self._done >> 20}/{self._total >> 20} MiB {fraction:4.0%}"
        )
        self._out.flush()

    def close_line(self) -> None:
        self._draw()
        self._out.write("\n")
        self._out.flush()


def cmd_add(args: argparse.Namespace) -> int:
    store = _store()
    pin = not args.no_pin
    if args.file == "-":
        cid = store.add(sys.stdin.buffer, pin=pin, name=args.name)
    else:
        path = Path(args.file)
        if not path.exists():
            raise NotFound(f"no such file: {path}")
        if path.is_dir():
            raise InvalidParameter("FILE", f"{path} is a directory (kinoit adds single files)")
        size = path.stat().st_size
        if size >= PROGRESS_MIN_BYTES and sys.stderr.isatty():
            with path.open("rb") as stream:
                reader = _ProgressReader(stream, size, sys.stderr)
                cid = store.add(reader, pin=pin, name=args.name)  # type: ignore[arg-type]
                reader.close_line()
        else:
            cid = store.add(path, pin=pin, name=args.name)
    print(cid)
    return 0


def _write_all(chunks: Iterator[bytes], out: IO[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)
    out.flush()


def cmd_cat(args: argparse.Namespace) -> int:
    _write_all(_store().cat(args.cid), sys.stdout.buffer)
    return 0


def cmd_dag_put(args: argparse.Namespace) -> int:
    text = sys.stdin.buffer.read()
    if not text.strip():
        raise InvalidParameter("stdin", "expected a dag-json document on standard input")
    value = from_dag_json(text)
    print(_store().dag_put(value, pin=args.pin))
    return 0


def cmd_dag_get(args: argparse.Namespace) -> int:
    print(to_dag_json(_store().dag_get(args.cid)))
    return 0


def _format_expiry(expires_at: float | None) -> str:
    if expires_at is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))


def cmd_pin_add(args: argparse.Namespace) -> int:
    if args.expire_in is not None and not args.expire_in > 0:
        raise InvalidParameter("--expire-in", f"must be a positive number, got {args.expire_in}")
    pin = _store().pin_add(args.cid, name=args.name, expire_in=args.expire_in)
    print(pin.cid)
    return 0


def cmd_pin_rm(args: argparse.Namespace) -> int:
    _store().pin_rm(args.cid)
    print(args.cid)
    return 0


def cmd_pin_ls(args: argparse.Namespace) -> int:
    del args
    for pin in _store().pin_ls():
        print(f"{pin.cid}\t{pin.name or '-'}\t{_format_expiry(pin.expires_at)}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    removed = _store().gc(min_age=args.min_age)
    print(f"removed {removed} blocks")
    return 0


def cmd_car_export(args: argparse.Namespace) -> int:
    store = _store()
    if args.output in (None, "-"):
        store.car_export(args.cid, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    with atomic_output(Path(args.output)) as out:
        store.car_export(args.cid, out)
    return 0


def cmd_car_import(args: argparse.Namespace) -> int:
    store = _store()
    if args.file == "-":
        roots = store.car_import(sys.stdin.buffer, pin=not args.no_pin)
    else:
        try:
            with open(args.file, "rb") as stream:
                roots = store.car_import(stream, pin=not args.no_pin)
        except FileNotFoundError:
            raise NotFound(f"no such file: {args.file}") from None
    for root in roots:
        print(root)
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's subcommands to the parser."""
    add = sub.add_parser("add", help="add a file to the store; print its CID")
    add.add_argument("file", metavar="FILE", help="file to add, or - for standard input")
    add.add_argument("--name", default="", help="name of the pin")
    add.add_argument("--no-pin", action="store_true", help="do not pin (gc may remove it)")
    add.set_defaults(handler=cmd_add)

    cat = sub.add_parser("cat", help="write a file's bytes to standard output")
    cat.add_argument("cid", metavar="CID")
    cat.set_defaults(handler=cmd_cat)

    dag = sub.add_parser("dag", help="DAG-CBOR blocks as dag-json")
    dag_sub = dag.add_subparsers(dest="dag_command", metavar="COMMAND", required=True)
    put = dag_sub.add_parser("put", help="read dag-json on stdin, store DAG-CBOR, print its CID")
    put.add_argument("--pin", action="store_true", help="pin the block (and what it links to)")
    put.set_defaults(handler=cmd_dag_put)
    get = dag_sub.add_parser("get", help="print a DAG-CBOR block as dag-json")
    get.add_argument("cid", metavar="CID")
    get.set_defaults(handler=cmd_dag_get)

    pin = sub.add_parser("pin", help="named pins with optional expiry")
    pin_sub = pin.add_subparsers(dest="pin_command", metavar="COMMAND", required=True)
    pin_add = pin_sub.add_parser("add", help="pin a DAG recursively")
    pin_add.add_argument("cid", metavar="CID")
    pin_add.add_argument("--name", default="", help="a name for the pin")
    pin_add.add_argument(
        "--expire-in", type=float, default=None, metavar="SECONDS", help="unpin after this long"
    )
    pin_add.set_defaults(handler=cmd_pin_add)
    pin_rm = pin_sub.add_parser("rm", help="remove a pin")
    pin_rm.add_argument("cid", metavar="CID")
    pin_rm.set_defaults(handler=cmd_pin_rm)
    pin_ls = pin_sub.add_parser("ls", help="list live pins: CID, name, expiry")
    pin_ls.set_defaults(handler=cmd_pin_ls)

    gc = sub.add_parser("gc", help="delete blocks that no live pin reaches")
    gc.add_argument(
        "--min-age",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep unpinned blocks younger than this (embedded store)",
    )
    gc.set_defaults(handler=cmd_gc)

    car = sub.add_parser("car", help="CAR v1 export and import")
    car_sub = car.add_subparsers(dest="car_command", metavar="COMMAND", required=True)
    export = car_sub.add_parser("export", help="write the DAG under CID as a CAR v1")
    export.add_argument("cid", metavar="CID")
    export.add_argument("-o", "--output", default=None, help="output file (default stdout)")
    export.set_defaults(handler=cmd_car_export)
    imp = car_sub.add_parser("import", help="import a CAR v1 and pin its roots")
    imp.add_argument("file", metavar="FILE", help="CAR file, or - for standard input")
    imp.add_argument("--no-pin", action="store_true", help="do not pin the roots")
    imp.set_defaults(handler=cmd_car_import)
