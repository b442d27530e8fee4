"""The Kafka edge: what the service needs of Kafka.

``source`` (the consumer-group member: fetch, pause, explicit commits),
``offsets`` (per-partition watermarks and finished runs in commit metadata),
``deadletter`` (the dead-letter producer and its headers) and ``clients``
(connection options shared by every client, and the C-extension check).
"""
