"""``python -m bench``: run the cases, print a table per case, write the Markdown report."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console

from . import machine, units
from .cases import CASES, NOT_YET
from .child import REPO_ROOT
from .datasets import Datasets
from .harness import GIB, Case, CaseResult, Context, Settings
from .report import RunReport, markdown, print_case


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny data, one run each (CI): checks the harness"
    )
    parser.add_argument(
        "--size-gib",
        type=float,
        default=4.0,
        help="model size for cases 2, 5, 6 (default 4; needs about that much free RAM)",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md", help="where to write the report"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / ".bench-data",
        help="where test data is written (in a fresh subdirectory, removed at the end); use a real disk",
    )
    parser.add_argument("--cases", help="comma-separated case numbers to run (default: all)")
    parser.add_argument("--no-cold", action="store_true", help="do not drop the page cache for cold rows")
    parser.add_argument("--note", help="a line shown at the top of the report (e.g. why it is not final)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the selected cases, then write the report to ``--output``."""
    args = _arguments(argv)
    settings = Settings.quick_run() if args.quick else Settings.full(args.size_gib, cold=not args.no_cold)
    cases = _selected(args.cases)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    _check_free_space(args.data_dir, settings)
    data = Datasets(
        Path(tempfile.mkdtemp(prefix="run-", dir=args.data_dir)), small_file_bytes=settings.small_file_bytes
    )
    out, err = Console(), Console(stderr=True)
    context = Context(settings, data, err)
    machine_rows, load_before = machine.describe(args.data_dir), machine.load_average()
    started = time.perf_counter()
    results: list[tuple[Case, CaseResult]] = []
    try:
        for case in cases:
            result = case.run(context)
            print_case(out, case, result)
            results.append((case, result))
    finally:
        data.remove()
    report = RunReport(
        settings=settings,
        machine=machine_rows,
        load_before=load_before,
        load_after=machine.load_average(),
        seconds=time.perf_counter() - started,
        results=results,
        not_run=NOT_YET,
        note=args.note,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(markdown(report))
    err.log(f"wrote {args.output}")


def _selected(numbers: str | None) -> list[Case]:
    if numbers is None:
        return CASES
    wanted = {number.strip() for number in numbers.split(",")}
    known = {str(case.number) for case in CASES}
    if not wanted <= known:
        raise SystemExit(
            f"--cases: no case {', '.join(sorted(wanted - known))}; the cases are {', '.join(sorted(known))}"
        )
    return [case for case in CASES if str(case.number) in wanted]


def _check_free_space(data_dir: Path, settings: Settings) -> None:
    # At most: the model, its cached entry, one copy being measured, and the small model of case 6.
    needed = 3 * settings.model_bytes + settings.model_bytes // 8 + GIB
    free = shutil.disk_usage(data_dir).free
    if free < needed:
        raise SystemExit(
            f"{data_dir} has {units.size(free)} free but the run needs about {units.size(needed)}; "
            "free space there, pass another --data-dir, or a smaller --size-gib"
        )


if __name__ == "__main__":
    main()
