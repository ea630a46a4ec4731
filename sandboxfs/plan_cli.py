"""`sandboxfs plan` and `sandboxfs annotate`: the mount plan from the command line.

    sandboxfs plan BUNDLE [--pod-bundle SANDBOX_BUNDLE] [--compact]
    sandboxfs annotate BUNDLE [--kubelet-pods-dir DIR] [--dry-run]

`plan` prints the compiled plan as JSON on stdout (docs/plan.md) and each
warning on stderr. `annotate` completes Kubernetes volume hints in
`BUNDLE/config.json` in place, atomically, keeping `config.json.orig`.

Exit status, as for the other subcommands: 0 on success, 1 when the
operation failed (e.g. config.json could not be rewritten), 2 for bad input,
with one line on stderr naming the field, mount or annotation.

These are entry points for `sandboxfs.cli.main`, kept apart so the plan can
grow its own options without touching the mount path.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sandboxfs.hints import is_sandbox, parse_hints
from sandboxfs.kubelet import DEFAULT_PODS_DIR, annotate_bundle
from sandboxfs.plan import compile_plan
from sandboxfs.spec import SpecError, load_bundle


def _say(message: str) -> None:
    print(f"sandboxfs: {message}", file=sys.stderr)


def cmd_plan(argv: Sequence[str]) -> int:
    """`sandboxfs plan BUNDLE`: print the compiled mount plan as JSON."""
    p = argparse.ArgumentParser(prog="sandboxfs plan",
                                description="Print the compiled mount plan of a bundle as JSON.")
    p.add_argument("bundle")
    p.add_argument("--pod-bundle", metavar="SANDBOX_BUNDLE",
                   help="the pod's sandbox bundle, whose annotations hold the mount hints "
                        "(for a container of a pod)")
    p.add_argument("--compact", action="store_true", help="one line of JSON, no indentation")
    args = p.parse_args(list(argv))
    try:
        bundle = load_bundle(args.bundle)
        hints = None
        if args.pod_bundle is not None:
            sandbox = load_bundle(args.pod_bundle)
            if not is_sandbox(sandbox.annotations):
                raise SpecError("--pod-bundle", f"{sandbox.path} is not a sandbox spec")
            hints = parse_hints(sandbox.annotations)
        plan = compile_plan(bundle, hints=hints)
    except SpecError as exc:
        _say(str(exc))
        return 2
    for warning in plan.warnings:
        _say(f"warning: {warning}")
    text = json.dumps(plan.to_json(), indent=None if args.compact else 2)
    print(text)
    return 0


def cmd_annotate(argv: Sequence[str]) -> int:
    """`sandboxfs annotate BUNDLE`: complete Kubernetes volume hints in config.json."""
    p = argparse.ArgumentParser(
        prog="sandboxfs annotate",
        description="Complete mount hints from the kubelet's volume tree, rewriting "
                    "BUNDLE/config.json atomically (the original is kept as config.json.orig).")
    p.add_argument("bundle")
    p.add_argument("--kubelet-pods-dir", type=Path, default=DEFAULT_PODS_DIR,
                   help=f"the kubelet's pod directory (default {DEFAULT_PODS_DIR})")
    p.add_argument("--dry-run", action="store_true",
                   help="print the translated config.json on stdout instead of writing it")
    args = p.parse_args(list(argv))
    try:
        result = annotate_bundle(args.bundle, pods_dir=args.kubelet_pods_dir,
                                 dry_run=args.dry_run)
    except SpecError as exc:
        _say(str(exc))
        return 2
    except OSError as exc:
        _say(f"cannot rewrite {Path(args.bundle) / 'config.json'}: {exc.strerror or exc}")
        return 1
    for note in result.notes:
        _say(note)
    if args.dry_run:
        print(json.dumps(result.config, indent=2))
    else:
        _say("config.json annotated" if result.changed else "config.json unchanged")
    return 0
