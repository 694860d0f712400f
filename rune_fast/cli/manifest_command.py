"""``rune manifest PATH``: write (or ``--check``) a bundle's ``rune.manifest``.

The manifest lists the SHA-256 of every file the bundle reads (``.rune``
files and ``[sources]``); ``load`` and ``PolicyStore`` then accept the bundle
only when every file matches it (docs/reload.md, "Partial writes").  Run it
*after* the files are complete, and deploy the manifest last.

Exit codes: 0 written (with ``--check``: the bundle matches its manifest);
1 ``--check`` and the bundle does not match its manifest (or has none);
5 the bundle does not load (nothing is written); 2 bad command line.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import RuneError, RuneManifestError
from .common import EXIT_LOAD_ERROR, EXIT_NEGATIVE, EXIT_OK, Subcommand, add_path, render_errors

__all__ = ["COMMANDS", "run_manifest"]


def _configure(p: argparse.ArgumentParser) -> None:
    add_path(p)
    p.add_argument("--source-root", action="append", default=[], metavar="DIR",
                   help="a directory outside the bundle that [sources] may read (repeatable)")
    p.add_argument("--check", action="store_true",
                   help="write nothing: exit 0 if the bundle matches its existing manifest, 1 if not")


def run_manifest(args: argparse.Namespace) -> int:
    from ..lang.manifest import write_manifest
    from ..lang.parser import bundle_manifest, load_bundle

    try:
        if args.check:
            load_bundle(args.path, recursive=args.recursive, source_roots=args.source_root, manifest="require")
            print(f"ok: {args.path} matches its manifest")
            return EXIT_OK
        target, digests = bundle_manifest(args.path, recursive=args.recursive, source_roots=args.source_root)
        write_manifest(target, digests)
    except RuneManifestError as err:
        render_errors(err, args.path, sys.stderr)
        return EXIT_NEGATIVE
    except RuneError as err:
        render_errors(err, args.path, sys.stderr)
        return EXIT_LOAD_ERROR
    except OSError as err:
        print(f"{args.path}: cannot write the manifest: {err.strerror or err}", file=sys.stderr)
        return EXIT_LOAD_ERROR
    print(f"wrote {target}: {len(digests)} file(s)")
    return EXIT_OK


COMMANDS: tuple[Subcommand, ...] = (
    Subcommand("manifest", "write a bundle's rune.manifest (SHA-256 of every file) for safe reloads",
               _configure, run_manifest),
)
