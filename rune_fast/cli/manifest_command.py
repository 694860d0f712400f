"""``rune manifest PATH``: write (or ``--check``) a bundle's ``rune.manifest``.

The manifest lists the SHA-256 of every file the bundle reads (``.rune``
files and ``[sources]``); a store or ``load`` then accepts the bundle only
when every file matches it (docs/reload.md).  Run it *after* the files are
complete, and deploy the manifest last.

Exit codes: 0 written (or, with ``--check``, the bundle matches its
manifest); 1 the bundle does not load or does not match; 2 bad command line.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import RuneError

__all__ = ["configure_manifest", "run_manifest"]


def configure_manifest(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE_OR_DIR", help="a .rune file or a directory of .rune files (a bundle)")
    p.add_argument("-r", "--recursive", action="store_true", help="also load .rune files in subdirectories")
    p.add_argument("--source-root", action="append", default=[], metavar="DIR",
                   help="a directory outside the bundle that [sources] may read (repeatable)")
    p.add_argument("--check", action="store_true",
                   help="do not write: verify that the bundle matches its existing manifest")


def run_manifest(args: argparse.Namespace) -> int:
    from ..lang.manifest import bundle_manifest, write_manifest
    from ..lang.parser import load_bundle

    try:
        if args.check:
            load_bundle(args.path, recursive=args.recursive, source_roots=args.source_root, manifest="require")
            print(f"ok: {args.path} matches its manifest")
            return 0
        target, digests = bundle_manifest(args.path, recursive=args.recursive, source_roots=args.source_root)
        write_manifest(target, digests)
    except RuneError as err:
        for e in err.errors:
            print(e.render(), file=sys.stderr)
        return 1
    except OSError as err:
        print(f"{args.path}: cannot write the manifest: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"wrote {target}: {len(digests)} file(s)")
    return 0
