"""Run the fuzz targets for a time budget and report executions, coverage and findings.

    python fuzz/run.py --target all --seconds 12          # what `python3 dev.py test` runs
    python fuzz/run.py --target envelope --seconds 3600   # one target for an hour
    python fuzz/run.py --target all --seconds 3600 --jobs 2 --keep-going

Each target runs as its own atheris/libFuzzer process (fuzz/targets/fuzz_<name>.py) with:

* the seed corpus fuzz/corpus/<name>/ and the kept findings fuzz/regressions/<name>/ (read
  only: every earlier crash is replayed first), and a working corpus
  fuzz/results/corpus/<name>/ that grows across runs (libFuzzer writes new inputs there);
* a per-input time limit (``-timeout``, a hang is a finding) and memory limits
  (``-rss_limit_mb``, ``-malloc_limit_mb``, an allocation beyond them is a finding);
* findings (crash-*, timeout-*, oom-* files) written to fuzz/results/artifacts/<name>/.

The libFuzzer log of each target goes to fuzz/results/logs/<name>.log; the summary (targets,
executions, coverage, findings) to fuzz/results/summary.json (and a time-stamped copy). The exit
status is 0 when every target ran its budget without a finding, 1 otherwise, 2 when atheris is
not installed (it has wheels for CPython 3.11+ on Linux x86-64 and macOS; there is no silent
skip).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
RESULTS = FUZZ / "results"

#: Target name -> the largest input libFuzzer makes (each a little above the format's own limit,
#: so that the size checks are exercised too, or the size of the largest seed).
TARGETS: dict[str, int] = {
    "envelope": 65_600,  # MAX_ENVELOPE_SIZE is 65,536
    "bundle": 2_100,  # MAX_BUNDLE_SIZE is 2,048
    "handshake": 4_096,  # an initial envelope is about 1,400 bytes
    "state": 16_384,  # a session state is under 1 KB here; a pool a few KB
    "policy": 8_192,  # the example policy is about 5 KB
    "consent": 8_192,  # MAX_RECORD_SIZE is 4,096
    "store": 131_072,  # the seed store image is 94 KB
}

_PROGRESS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?", re.MULTILINE)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_KINDS = ("crash", "timeout", "oom", "leak", "slow-unit")


@dataclass
class Finding:
    """One input libFuzzer kept because the target failed on it."""

    kind: str
    artifact: str
    summary: str


@dataclass
class TargetResult:
    """What one target's runs did (several runs with --keep-going)."""

    target: str
    seconds: float = 0.0
    executions: int = 0
    coverage: int = 0
    features: int = 0
    corpus: int = 0
    runs: int = 0
    exit_codes: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None


def atheris_version() -> str | None:
    """The installed atheris version, or None if atheris cannot be imported."""
    probe = "import atheris, importlib.metadata as m; print(m.version('atheris'))"
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _summary_of(log: str, artifact: str) -> str:
    """The exception line of a crash (or libFuzzer's own verdict), without input bytes."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Uncaught Python exception" in line and i + 1 < len(lines):
            return lines[i + 1].strip()[:300]  # "TypeError: message"
    for line in lines:
        if "ERROR: libFuzzer:" in line or "ALARM:" in line:
            return line.strip()[:300]
    return Path(artifact).name


def run_target(name: str, seconds: float, args: argparse.Namespace) -> TargetResult:
    """Fuzz one target for ``seconds`` (restarting after a finding with --keep-going)."""
    result = TargetResult(name)
    work = RESULTS / "corpus" / name
    artifacts = RESULTS / "artifacts" / name
    logs = RESULTS / "logs"
    for directory in (work, artifacts, logs):
        directory.mkdir(parents=True, exist_ok=True)
    corpora = [str(work), str(FUZZ / "corpus" / name)]
    regressions = FUZZ / "regressions" / name
    if regressions.is_dir():
        corpora.append(str(regressions))
    log_path = logs / f"{name}.log"
    log_path.write_text("", encoding="utf-8")
    deadline = time.monotonic() + seconds
    while True:
        left = int(deadline - time.monotonic())
        if left < 1 or (result.runs and not args.keep_going):
            break
        cmd = [
            sys.executable,
            str(FUZZ / "targets" / f"fuzz_{name}.py"),
            *corpora,
            f"-max_total_time={left}",
            f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-malloc_limit_mb={args.malloc_limit_mb}",
            f"-max_len={TARGETS[name]}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
        ]
        started = time.monotonic()
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and scripts
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=left + 4 * args.timeout + 60,
                check=False,
            )
            log, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            log = (out if isinstance(out, str) else out.decode("utf-8", "replace")) + "\nKILLED"
            code = -9
            result.error = "the fuzzing process overran its budget and was killed"
        result.seconds += time.monotonic() - started
        result.runs += 1
        result.exit_codes.append(code)
        with log_path.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {' '.join(cmd)}\n{log}\n")
        progress = _PROGRESS.findall(log)
        if progress:
            last = progress[-1]
            result.coverage = max(result.coverage, int(last[2]))
            result.features = max(result.features, int(last[3]))
            if last[4]:
                result.corpus = int(last[4])
        stats = dict(_STAT.findall(log))
        executions = stats.get("number_of_executed_units")
        if executions is None and progress:
            executions = progress[-1][0]
        result.executions += int(executions or 0)
        found = _ARTIFACT.findall(log)
        for artifact in found:
            kind = next((k for k in _KINDS if Path(artifact).name.startswith(k)), "crash")
            result.findings.append(Finding(kind, artifact, _summary_of(log, artifact)))
        if code != 0 and not found and result.error is None:
            result.error = f"the target exited with status {code} without a finding"
            tail = "\n".join(log.splitlines()[-15:])
            print(f"fuzz: {name}: exit {code}; the end of its log:\n{tail}", file=sys.stderr)
            break
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run the entrenous fuzz targets.")
    parser.add_argument("--target", default="all", help=f"all, or one of: {', '.join(TARGETS)}")
    parser.add_argument("--seconds", type=float, default=60, help="budget per target")
    parser.add_argument(
        "--jobs", type=int, nargs="?", const=2, default=1, help="targets run at once (default 1)"
    )
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input (a hang)")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--malloc-limit-mb", type=int, default=256)
    parser.add_argument(
        "--keep-going", action="store_true", help="restart a target after a finding"
    )
    args = parser.parse_args(argv)
    names = list(TARGETS) if args.target == "all" else [args.target]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; choose all or one of: {', '.join(TARGETS)}")
    version = atheris_version()
    if version is None:
        print(
            "fuzz: FAILED: atheris is not installed in this Python "
            f"({platform.python_implementation()} {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}); install the fuzz extra "
            "(pip install -e '.[fuzz]'). atheris ships wheels for CPython 3.11+ on Linux x86-64 "
            "and macOS; elsewhere it must be built from source with a clang that has libFuzzer.",
            file=sys.stderr,
        )
        return 2
    print(
        f"fuzz: {len(names)} target(s), {args.seconds:g} s each, {args.jobs} at a time "
        f"(atheris {version})",
        file=sys.stderr,
        flush=True,
    )
    started = datetime.now(UTC)
    clock = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda n: run_target(n, args.seconds, args), names))
    for r in results:
        verdict = "ok" if not r.findings and r.error is None else "FAILED"
        print(
            f"fuzz: {r.target:<10} {r.executions:>10,} executions  cov {r.coverage:>5}  "
            f"ft {r.features:>5}  corpus {r.corpus:>4}  {r.seconds:6.1f} s  "
            f"{len(r.findings)} finding(s)  {verdict}",
            file=sys.stderr,
        )
        for f in r.findings:
            print(f"fuzz:   {f.kind}: {f.summary}\nfuzz:     input: {f.artifact}", file=sys.stderr)
        if r.error:
            print(f"fuzz:   {r.error} (log: {RESULTS / 'logs' / (r.target + '.log')})")
    summary = {
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - clock, 1),
        "seconds_per_target": args.seconds,
        "jobs": args.jobs,
        "limits": {
            "timeout_s": args.timeout,
            "rss_limit_mb": args.rss_limit_mb,
            "malloc_limit_mb": args.malloc_limit_mb,
        },
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "atheris": version,
        "targets": {r.target: asdict(r) for r in results},
        "findings": sum(len(r.findings) for r in results),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2) + "\n"
    (RESULTS / "summary.json").write_text(text, encoding="utf-8")
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"summary-{stamp}.json").write_text(text, encoding="utf-8")
    failed = [r.target for r in results if r.findings or r.error]
    print(
        f"fuzz: {'FAILED: ' + ', '.join(failed) if failed else 'no findings'} "
        f"(summary: {(RESULTS / 'summary.json').relative_to(FUZZ.parent)})",
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main(sys.argv[1:]))
