"""The Kafka edge: what the service needs of Kafka.

``source`` (the consumer-group member: fetch, pause, explicit commits),
``offsets`` (per-partition watermarks and finished runs in commit metadata),
``status`` (what the source saw of the broker, for readiness and the shutdown),
``deadletter`` (the dead-letter producer and its headers), ``clients``
(connection options shared by every client, and the C-extension check) and
``client_logs`` (aiokafka's own log lines, summarised).
"""
