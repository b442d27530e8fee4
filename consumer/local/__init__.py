"""Everything for running the service on one machine; the service never imports it.

The local Kafka broker from Maven Central jars (``kafka``, ``kafka_jars``,
``kafka_process``) and its topics (``kafka_topics``), the demo (``demo``, ``demo_view``), sample
events (``samples``), the providers' simulators (``simulators``) and the
benchmarks (``bench``).
"""
