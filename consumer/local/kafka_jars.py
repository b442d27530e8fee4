"""Fetch the Apache Kafka broker's jars from Maven Central, once, into a cache.

The project runs the real broker from its own jars (no Docker engine on the
machines it is built on). Maven resolves ``org.apache.kafka:kafka_2.13`` and its
runtime dependencies from a tiny generated pom kept outside the repository.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from consumer.errors import FatalError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# The broker logs through slf4j 1.7; without this binding its log would be silent.
LOG4J_VERSION = "2.24.3"
CACHE_ENV = "KAFKA_LOCAL_CACHE"
_MARKER = "fetch-complete"

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.order-push-consumer</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaUnavailable(FatalError):
    """A local broker cannot run here: a tool is missing or the jars cannot be fetched."""

    reason = "kafka_unavailable"


NO_JAVA = (
    "Java 17+ is needed to run the local Kafka broker, and `java` is not on PATH. "
    "With Docker you can run the official image instead "
    "(`docker compose -f docker/compose.yaml up kafka`) and set KAFKA_BOOTSTRAP_SERVERS."
)
NO_MAVEN = (
    "Maven (`mvn`) is needed once to fetch the Kafka broker jars from Maven Central, "
    "and it is not on PATH. Install Maven, or run a broker yourself and set "
    "KAFKA_BOOTSTRAP_SERVERS."
)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the jars live: ``$KAFKA_LOCAL_CACHE`` or a per-user cache directory."""
    configured = environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "order-push-consumer" / f"kafka-{KAFKA_VERSION}"


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable(NO_JAVA)
    return java


def ensure_jars(cache_dir: Path | None = None, *, timeout_s: float = 900.0) -> Path:
    """Return the directory holding every jar the broker needs, fetching it if needed.

    A marker file is written only after Maven succeeded, so an interrupted fetch
    is redone from scratch. A file lock keeps two processes from fetching at once.
    """
    cache = cache_dir or default_cache_dir()
    lib = cache / "lib"
    if (cache / _MARKER).exists():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / _MARKER).exists():
            _fetch(cache, lib, timeout_s)
    return lib


def _fetch(cache: Path, lib: Path, timeout_s: float) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(NO_MAVEN)
    shutil.rmtree(lib, ignore_errors=True)
    (cache / "pom.xml").write_text(_POM, encoding="utf-8")
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(cache / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise KafkaUnavailable(
            f"Maven did not fetch the Kafka {KAFKA_VERSION} jars within {timeout_s:.0f} s "
            f"(pom: {cache / 'pom.xml'})"
        ) from exc
    if done.returncode != 0 or not any(lib.glob(f"kafka_{SCALA_VERSION}-*.jar")):
        tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise KafkaUnavailable(
            f"Maven could not fetch the Kafka {KAFKA_VERSION} jars (exit {done.returncode}, "
            f"pom: {cache / 'pom.xml'}):\n" + "\n".join(tail)
        )
    (cache / _MARKER).write_text(f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}\n", encoding="utf-8")
