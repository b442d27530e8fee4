"""What the brokers say of one topic: does it exist, may this client write to it.

Asked once at start, so that a setting that cannot work stops the service then,
not hours later at the first write. Kafka answers "may write" only in a
metadata request of version 8 or later (KIP-430, Kafka 2.3): with
``include_topic_authorized_operations`` each topic carries the operations the
broker's authorizer allows this client (all of them when it has no
authorizer). aiokafka's own metadata requests stop at version 5, so the
version-8 request is declared here, on aiokafka's protocol types; a broker
older than 2.3 gets version 5 and the answer says nothing of writing.

A metadata request may also ask the broker to create a missing topic
(``allow_auto_topic_creation``): one with ``auto.create.topics.enable`` does
so, as it would at the first write; one without (the usual production
setting) answers that the topic does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.errors import (
    KafkaError,
    LeaderNotAvailableError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.metadata import MetadataRequest_v5
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Schema, String

_WRITE = 4  # AclOperation.WRITE's code: its bit in the authorized operations
_NOT_SAID = -(2**31)  # the broker did not compute the operations


class _MetadataResponseV8(Response):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "brokers",
            Array(
                ("node_id", Int32),
                ("host", String("utf-8")),
                ("port", Int32),
                ("rack", String("utf-8")),
            ),
        ),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("topic", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition", Int32),
                        ("leader", Int32),
                        ("leader_epoch", Int32),
                        ("replicas", Array(Int32)),
                        ("isr", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class _MetadataRequestV8(RequestStruct):  # type: ignore[misc]
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = _MetadataResponseV8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class TopicMetadataRequest(Request[MetadataRequest_v5 | _MetadataRequestV8]):  # type: ignore[misc]
    """Metadata of some topics, with this client's operations on them when the broker can."""

    API_KEY = 3

    def __init__(self, topics: list[str], *, allow_auto_topic_creation: bool) -> None:
        self._topics = topics
        self._create = allow_auto_topic_creation

    def build(self, request_struct_class: type[Any]) -> Any:
        if request_struct_class is _MetadataRequestV8:
            return _MetadataRequestV8(self._topics, self._create, False, True)
        return request_struct_class(self._topics, self._create)


@dataclass(frozen=True, slots=True)
class TopicAccess:
    """One topic as a broker described it to this client."""

    topic: str
    error: type[KafkaError] | None  # None: it exists and may be described
    internal: bool
    partitions: int
    may_write: bool | None  # None: the broker did not say (older than Kafka 2.3)

    @property
    def missing(self) -> bool:
        return self.error is UnknownTopicOrPartitionError

    @property
    def denied(self) -> bool:
        return self.error is TopicAuthorizationFailedError

    @property
    def being_created(self) -> bool:
        """Just created on demand: the broker has no leader for it yet."""
        return self.error is LeaderNotAvailableError or (self.error is None and not self.partitions)


async def describe_topic(client: Any, topic: str, *, create: bool = False) -> TopicAccess:
    """Ask one broker of ``client`` (a started aiokafka client) about ``topic``.

    ``create`` lets a broker that creates topics on demand create it. Raises
    aiokafka's ``KafkaError`` when no broker answers.
    """
    node = client.get_random_node()
    if node is None:
        raise KafkaError("no broker is known to ask for metadata")
    response = await client.send(
        node, TopicMetadataRequest([topic], allow_auto_topic_creation=create)
    )
    (described,) = [t for t in response.to_object()["topics"] if t["topic"] == topic]
    operations = described.get("topic_authorized_operations", _NOT_SAID)
    code = described["error_code"]
    return TopicAccess(
        topic=topic,
        error=for_code(code) if code else None,
        internal=bool(described["is_internal"]),
        partitions=len(described["partitions"]),
        may_write=None if operations == _NOT_SAID else bool(operations & (1 << _WRITE)),
    )
