"""The metadata request of ``consumer.kafka.access``: which version each broker gets.

Against real brokers it is exercised by ``test_dead_letter_topic_check.py``; here,
the choice for a broker too old to say what a client may do (before Kafka 2.3).
"""

from __future__ import annotations

from aiokafka.protocol.metadata import MetadataRequest_v5

from consumer.kafka.access import TopicMetadataRequest

METADATA = 3  # the API key


def test_a_broker_that_knows_version_8_is_asked_for_the_clients_operations() -> None:
    request = TopicMetadataRequest(["dlq"], allow_auto_topic_creation=False)

    struct = request.prepare({METADATA: (4, 13)})  # Kafka 4.x

    assert struct.API_VERSION == 8
    assert struct.to_object() == {
        "topics": ["dlq"],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": True,
    }


def test_an_older_broker_gets_version_5_which_says_nothing_of_writing() -> None:
    request = TopicMetadataRequest(["dlq"], allow_auto_topic_creation=True)

    struct = request.prepare({METADATA: (0, 7)})  # Kafka 2.1 / 2.2

    assert isinstance(struct, MetadataRequest_v5)
    assert struct.to_object() == {"topics": ["dlq"], "allow_auto_topic_creation": True}
