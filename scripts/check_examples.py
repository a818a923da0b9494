"""Load every manifest under the given folders and report counts, errors by category, and crashes.

Usage: python scripts/check_examples.py DIR [DIR ...] [--show-errors] [--show-warnings]

A "crash" is an exception escaping the loader or linter (it must never happen); errors and
warnings are the diagnostics the loader/linter produced. Exit code 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from collections import Counter
from pathlib import Path

from eventbridge.models.lint import lint
from eventbridge.models.loader import iter_manifest_files, load_paths


def _category(message: str) -> str:
    """Group similar messages: drop quoted values and numbers."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'…'", message))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--show-errors", action="store_true", help="print every error diagnostic")
    parser.add_argument("--show-warnings", action="store_true", help="print every warning diagnostic")
    args = parser.parse_args(argv)
    crashes = 0
    for folder in args.folders:
        files = objects = errors = warnings = 0
        error_categories: Counter[str] = Counter()
        warning_categories: Counter[str] = Counter()
        for file in iter_manifest_files(folder):
            files += 1
            try:
                result = load_paths([file])
                diagnostics = lint(result)
            except Exception:  # noqa: BLE001 - counting crashes is the point
                crashes += 1
                print(f"CRASH {file}", file=sys.stderr)
                traceback.print_exc()
                continue
            objects += len(result.objects)
            for diagnostic in diagnostics:
                label = f"{diagnostic.kind}: {_category(diagnostic.path)}: {_category(diagnostic.message)}"
                if diagnostic.severity == "error":
                    errors += 1
                    error_categories[label] += 1
                    if args.show_errors:
                        print(diagnostic)
                else:
                    warnings += 1
                    warning_categories[label] += 1
                    if args.show_warnings:
                        print(diagnostic)
        print(f"== {folder}: {files} files, {objects} objects, {errors} errors, {warnings} warnings")
        for title, categories in (("errors", error_categories), ("warnings", warning_categories)):
            if categories:
                print(f"-- {title} by category (kind: path: message):")
                for label, count in categories.most_common():
                    print(f"{count:6d}  {label}")
    print(f"crashes: {crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
