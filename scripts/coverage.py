#!/usr/bin/python3
"""scripts/coverage.py BUILD_DIR... -- line and branch coverage per source
directory, from the gcov counters a `make coverage` run left in the build
directories (gcovr reads them), and the floors each directory must meet.

  scripts/coverage.py build-coverage build-coverage-fault
  scripts/coverage.py --files build-coverage     # and a line per file
  scripts/coverage.py --no-floors build-coverage # report only
  scripts/coverage.py --uncovered build-coverage # what no run reached:
      FILE: lines 12 40; branches 57/1 (line 57's second branch)
  scripts/coverage.py --reset build-coverage     # before a run: counters zero

--reset leaves an empty counter file, writable by every user, beside each
object: the suite runs processes as other users (tests/suites/users.sh), and
gcov can add their counts only to a file they may write (an empty one counts
as zero).

Exit status 1 when a directory is below its floor. Lines and branches that
cannot be reached are excluded in the source, each with a comment saying
why (GCOVR_EXCL_LINE, GCOVR_EXCL_BR_LINE, GCOVR_EXCL_START/STOP):
`git grep GCOVR_EXCL` lists them.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# directory: (lines %, branches %) it must reach; None: reported only.
FLOORS = {
    "base": (97.0, 90.0),  # split out of coordinator/ (issue 12): its floor
    "coordinator": (97.0, 90.0),
    "pool": (97.0, 90.0),
    "ext": (93.0, 85.0),
    "cli": (93.0, 85.0),
    "preload": None,
}


def details(build_dir, tmp):
    """gcovr's line-by-line report of one build directory's counters."""
    out = os.path.join(tmp, os.path.basename(build_dir) + ".json")
    cmd = ["gcovr", "--root", ROOT, "--json", out,
           "--exclude-unreachable-branches",
           "--gcov-ignore-parse-errors",
           "--filter", os.path.join(ROOT, "(%s)/" % "|".join(FLOORS)),
           os.path.join(ROOT, build_dir)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    with open(out) as f:
        return json.load(f)["files"]


def summary(build_dirs):
    """Per-file line and branch totals of the product sources over every
    build directory: a line or branch counts as covered when any build's
    run covered it. (Merged here, not by gcovr: gcovr 5.2 refuses to merge
    two builds of a file whose functions it places on different lines.)"""
    lines = {}     # file -> {line number: covered}
    branches = {}  # file -> {(line number, index): covered}
    with tempfile.TemporaryDirectory() as tmp:
        for d in build_dirs:
            for f in details(d, tmp):
                fl = lines.setdefault(f["file"], {})
                fb = branches.setdefault(f["file"], {})
                for ln in f["lines"]:
                    if ln.get("gcovr/noncode") or ln.get("gcovr/excluded"):
                        continue
                    n = ln["line_number"]
                    fl[n] = fl.get(n, False) or ln["count"] > 0
                    for i, b in enumerate(ln["branches"]):
                        fb[(n, i)] = fb.get((n, i), False) or b["count"] > 0
    return [{"filename": name,
             "line_covered": sum(lines[name].values()),
             "line_total": len(lines[name]),
             "branch_covered": sum(branches[name].values()),
             "branch_total": len(branches[name]),
             "uncovered_lines": sorted(n for n, c in lines[name].items() if not c),
             "uncovered_branches": sorted(k for k, c in branches[name].items() if not c)}
            for name in sorted(lines)]


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def reset(build_dirs):
    for d in build_dirs:
        for top, _, names in os.walk(os.path.join(ROOT, d)):
            for n in names:
                if n.endswith(".gcno"):
                    gcda = os.path.join(top, n[:-5] + ".gcda")
                    open(gcda, "w").close()
                    os.chmod(gcda, 0o666)


def main(argv):
    if "--reset" in argv:
        reset([a for a in argv if not a.startswith("--")])
        return 0
    files_too = "--files" in argv
    uncovered = "--uncovered" in argv
    floors = "--no-floors" not in argv
    build_dirs = [a for a in argv if not a.startswith("--")]
    if not build_dirs:
        print(__doc__, file=sys.stderr)
        return 2
    per_dir = {d: [0, 0, 0, 0] for d in FLOORS}
    rows = []
    for f in summary(build_dirs):
        name = f["filename"]
        top = name.split("/", 1)[0]
        if top not in per_dir:
            continue
        t = per_dir[top]
        t[0] += f["line_covered"]
        t[1] += f["line_total"]
        t[2] += f["branch_covered"]
        t[3] += f["branch_total"]
        rows.append((name, f["line_covered"], f["line_total"],
                     f["branch_covered"], f["branch_total"]))
    if uncovered:
        for f in summary(build_dirs):
            if f["uncovered_lines"] or f["uncovered_branches"]:
                print("%s: lines %s; branches %s" % (
                    f["filename"], " ".join(map(str, f["uncovered_lines"])),
                    " ".join("%d/%d" % b for b in f["uncovered_branches"])))
        return 0
    if files_too:
        print("%-32s %16s %16s" % ("file", "lines", "branches"))
        for name, lc, lt, bc, bt in sorted(rows):
            print("%-32s %6.1f%% %4d/%-4d %6.1f%% %4d/%-4d" %
                  (name, pct(lc, lt), lc, lt, pct(bc, bt), bc, bt))
        print()
    print("%-12s %22s %22s  %s" % ("directory", "lines", "branches", "floor (lines, branches)"))
    below = []
    total = [0, 0, 0, 0]
    for d, (lc, lt, bc, bt) in per_dir.items():
        for i, v in enumerate((lc, lt, bc, bt)):
            total[i] += v
        floor = FLOORS[d]
        lp, bp = pct(lc, lt), pct(bc, bt)
        verdict = "report only"
        if floor:
            ok = lp >= floor[0] and bp >= floor[1]
            verdict = "%.0f%%, %.0f%%: %s" % (floor[0], floor[1], "ok" if ok else "BELOW")
            if not ok:
                below.append(d)
        print("%-12s %6.1f%% (%5d/%5d) %6.1f%% (%5d/%5d)  %s" %
              (d + "/", lp, lc, lt, bp, bc, bt, verdict))
    print("%-12s %6.1f%% (%5d/%5d) %6.1f%% (%5d/%5d)" %
          ("all", pct(total[0], total[1]), total[0], total[1],
           pct(total[2], total[3]), total[2], total[3]))
    if floors and below:
        print("coverage below the floor in: " + ", ".join(below))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
