"""Count the instructions of one part of a run under callgrind (``bench/inprocess.py --callgrind``).

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/inprocess.py open-api --callgrind

Python cannot issue valgrind's client requests itself, so ``marks()`` compiles a two-function
shared library from ``<valgrind/callgrind.h>`` (``cc``; Debian: ``apt-get install -y valgrind``,
which ships the header) and loads it: ``start()`` zeroes the counters and switches instrumentation
on, ``stop()`` writes them to ``callgrind.out.<pid>.1`` (in the working directory) and switches it
off. Set-up, seeding, minting and warm-up then run uninstrumented (several times faster) and count
nothing, so the timed part's total over its requests is the figure, from one run; outside valgrind
the two calls do nothing. Instruction counts do not move with the machine's load, which wall-clock
and CPU figures on a shared machine do (docs/benchmarks.md, "Recovering the consolidation's cost").
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_DUMP_STATS_AT("timed part"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def marks() -> ctypes.CDLL:
    """The library with ``start()`` and ``stop()``; SystemExit naming what is missing."""
    compiler = shutil.which("cc")
    if compiler is None or not Path("/usr/include/valgrind/callgrind.h").exists():
        raise SystemExit("--callgrind needs cc and valgrind's headers: apt-get install -y gcc valgrind")
    place = Path(tempfile.mkdtemp(prefix="op-callgrind-"))
    (place / "marks.c").write_text(SOURCE)
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(place / "marks.so"), str(place / "marks.c")],
                   check=True)  # fmt: skip
    return ctypes.CDLL(str(place / "marks.so"))


def dumped_instructions(pid: int, directory: Path = Path()) -> int | None:
    """The instructions ``stop()`` wrote for process ``pid`` (every thread's file of that dump), or
    None when there is none (not under valgrind, or another ``--callgrind-out-file``)."""
    files = list(directory.glob(f"callgrind.out.{pid}.1")) + list(directory.glob(f"callgrind.out.{pid}.1-*"))
    total = [int(found.group(1)) for path in files if (found := re.search(r"^summary: (\d+)", path.read_text(), re.M))]
    return sum(total) if total else None
