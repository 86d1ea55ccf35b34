"""Package every function for Cloud Functions (gen2): dist/functions/<name>.zip.

Each zip is what the Python 3.11 runtime builds from:

    main.py            functions/<name>/main.py, at the root (the entry point module)
    spreadpilot/...    the whole package, every data file included (topics.yaml,
                       secrets.yaml, the console's templates/ and static/ files)
    requirements.txt   the repository's, exported from uv.lock (`make requirements.txt`)

The bytes depend only on the contents: sorted entries, a fixed timestamp and
fixed permissions. Terraform names the uploaded object after the zip's MD5, so
an unchanged function is never redeployed and a changed one always is.

    python deploy/package.py [--out DIR] [NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path("shared/spreadpilot")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
SKIPPED_PARTS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def function_names(root: Path = ROOT) -> list[str]:
    """Every folder of functions/ that has a main.py."""
    return sorted(p.parent.name for p in (root / "functions").glob("*/main.py"))


def contents(root: Path, name: str) -> dict[str, Path]:
    """Archive name -> source file, for function `name`."""
    files = {
        "main.py": root / "functions" / name / "main.py",
        "requirements.txt": root / "requirements.txt",
    }
    package = root / PACKAGE
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package.parent)
        if path.is_file() and not (
            SKIPPED_PARTS & set(relative.parts) or path.suffix in SKIPPED_SUFFIXES
        ):
            files[relative.as_posix()] = path
    for arcname, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{arcname}: {path} is missing")
    return files


def build(name: str, out_dir: Path, root: Path = ROOT) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, path in sorted(contents(root, name).items()):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="functions to package (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "functions")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = function_names(args.root)
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"no functions/<name>/main.py for {', '.join(unknown)}")
    for name in args.names or known:
        path = build(name, args.out, args.root)
        print(f"{path} ({path.stat().st_size // 1024} KiB)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
