"""The hand-made mutants of issue 18: each is planted in a copy of the code and the
fast dispatch tests must fail on it (``make mutation-handmade``).

These are the bugs an audit planted in the dispatch code and found the fast tests
missed; mutmut's mechanical mutants (``make mutation``) cover the rest. Each mutant
replaces one exact passage (it must occur once), so a change to the code that
moves the passage fails loudly here instead of planting nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = ["tests/dispatch", "tests/test_outcomes.py"]
PYTEST_OPTIONS = ["-p", "no:cacheprovider", "--hypothesis-profile=mutation"]
PENDING = "consumer/dispatch/pending.py"
DISPATCHER = "consumer/dispatch/dispatcher.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str


MUTANTS = [
    Mutant(
        "a push waiting for its retry never expires (sent past its TTL)",
        PENDING,
        """            if _valid(entry, gen, _WAITING):
                self._leave(entry, State.DONE)
                self.finish(entry.job, Outcome.EXPIRED""",
        """            if _valid(entry, gen, (State.READY,)):
                self._leave(entry, State.DONE)
                self.finish(entry.job, Outcome.EXPIRED""",
    ),
    Mutant(
        "a status held back behind its order's request never expires",
        PENDING,
        """        heapq.heappush(self._expiry, (entry.job.expires_at, *item))
        key = entry.job.push.collapse_key
        if key is not None and key in self._flying:
            entry.state = State.DELAYED  # until the request carrying this key settles
            self._blocked[key] = entry
""",
        """        key = entry.job.push.collapse_key
        if key is not None and key in self._flying:
            entry.state = State.DELAYED  # until the request carrying this key settles
            self._blocked[key] = entry
            return
        heapq.heappush(self._expiry, (entry.job.expires_at, *item))
        if False:
            pass
""",
    ),
    Mutant(
        "the concurrency cap removed",
        DISPATCHER,
        "while len(self._tasks) < self._max_concurrent and self._budget.can_start():",
        "while self._budget.can_start():",
    ),
    Mutant(
        "a provider crash escapes instead of dead-lettering the request",
        DISPATCHER,
        """            log.exception("push_send_crashed", provider=self._provider.name)
            error = UnexpectedFailure(f"{self._provider.name} send failed unexpectedly: {exc!r}")
""",
        "            raise\n",
    ),
    Mutant(
        "an outcome sink's exception is not caught",
        DISPATCHER,
        """            except Exception:  # the sink's bug must not lose the other outcomes
                log.exception("outcome_sink_failed", event_id=job.event_id)
""",
        """            except ZeroDivisionError:
                raise
""",
    ),
    Mutant(
        "a cancelled request never gives its budget slot back",
        DISPATCHER,
        """        finally:
            self._budget.finish(slot)  # cancelled too: it may have arrived by now
        if confirmation is None:""",
        """        self._budget.finish(slot)
        if confirmation is None:""",
    ),
    Mutant(
        "an off-by-one in the duplicate memory",
        PENDING,
        "    while len(memory) > bound:",
        "    while len(memory) >= bound:",
    ),
    Mutant(
        "`and` turned `or` in the comparison that decides which status is older",
        PENDING,
        "if self.version is not None and other.version is not None:",
        "if self.version is not None or other.version is not None:",
    ),
    Mutant(
        "`<` turned `<=` in the version comparison that decides which status is older",
        PENDING,
        "            return self.version < other.version",
        "            return self.version <= other.version",
    ),
]


def plant(mutant: Mutant, root: Path) -> None:
    path = root / mutant.path
    text = path.read_text(encoding="utf-8")
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"{mutant.path}: the passage of {mutant.name!r} occurs {count} times")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def killed(mutant: Mutant) -> tuple[bool, float, str]:
    """Run the tests against a copy of the code with the mutant planted."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = Path(tmp)
        for name in ("consumer", "tests"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        plant(mutant, root)
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *TESTS, "-x", "-q", *PYTEST_OPTIONS],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
        return run.returncode != 0, time.monotonic() - started, failed[0] if failed else ""


def main(argv: list[str]) -> int:
    """Plant every mutant, or those whose numbers are given."""
    chosen = {int(arg) for arg in argv}
    survivors = 0
    for number, mutant in enumerate(MUTANTS, 1):
        if chosen and number not in chosen:
            continue
        dead, seconds, by = killed(mutant)
        survivors += not dead
        verdict = "killed" if dead else "SURVIVED"
        print(f"{number}. {verdict:8} {seconds:5.1f} s  {mutant.name}", flush=True)
        if by:
            print(f"   by {by.removeprefix('FAILED ')[:150]}", flush=True)
    print(f"{len(chosen or MUTANTS) - survivors} of {len(chosen or MUTANTS)} killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
