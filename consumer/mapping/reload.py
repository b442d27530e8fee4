"""Following edits to the mappings directory while the service runs.

Every ``reload_interval_s`` the directory's file names, sizes and modification
times are compared with the last look; on a change the files are read in one
snapshot and, if their contents differ from the active set, loaded and checked
in full. A good set replaces the active one in a single assignment (a render in
progress keeps the set it started with); a broken set is logged, counted and
ignored, and the last good set stays active.
"""

from __future__ import annotations

from pathlib import Path

from consumer.clock import Clock
from consumer.errors import MappingLoadError
from consumer.logs import get_logger
from consumer.mapping.loader import (
    digest_of,
    load_mappings,
    load_sources,
    mapping_files,
    read_sources,
)
from consumer.mapping.rules import MappingSet
from consumer.metrics import Metrics
from consumer.settings import MappingSettings

log = get_logger(__name__)
Stamp = tuple[tuple[str, int, int], ...] | None


def directory_stamp(directory: Path) -> Stamp:
    try:
        return tuple(
            (p.name, (st := p.stat()).st_mtime_ns, st.st_size) for p in mapping_files(directory)
        )
    except OSError:
        return None


class MappingReloader:
    def __init__(
        self,
        directory: Path,
        settings: MappingSettings,
        metrics: Metrics,
        clock: Clock,
        *,
        initial: MappingSet | None = None,
    ) -> None:
        self.directory = directory
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._stamp = directory_stamp(directory)
        self.current: MappingSet = (
            initial if initial is not None else load_mappings(directory, settings)
        )
        self._rejected_digest: str | None = None

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._settings.reload_interval_s)
            try:
                self.poll()
            except Exception as exc:  # e.g. the directory vanished mid-read: keep serving
                self._reject([f"{self.directory}: cannot be read: {exc!r}"])

    def poll(self) -> bool:
        """Look at the directory once; True when a new set became active."""
        stamp = directory_stamp(self.directory)
        if stamp == self._stamp:
            return False
        try:
            sources = read_sources(self.directory)
        except MappingLoadError as exc:
            self._stamp = stamp
            self._reject(exc.problems)
            return False
        if directory_stamp(self.directory) != stamp:
            return False  # a file is still being written: look again next time
        self._stamp = stamp
        digest = digest_of(sources)
        if digest in (self.current.digest, self._rejected_digest):
            return False
        try:
            loaded = load_sources(self.directory, sources, self._settings)
        except MappingLoadError as exc:
            self._rejected_digest = digest
            self._reject(exc.problems)
            return False
        self.current = loaded
        self._rejected_digest = None
        self._metrics.mapping_reloads.labels(result="loaded").inc()
        log.info("mappings_loaded", directory=str(self.directory), rules=len(loaded.rules))
        return True

    def _reject(self, problems: list[str]) -> None:
        self._metrics.mapping_reloads.labels(result="rejected").inc()
        log.error(
            "mappings_rejected",
            directory=str(self.directory),
            problems=problems,
            active_rules=len(self.current.rules),
        )
