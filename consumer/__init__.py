"""Order and bonus events from Kafka to push notifications, under the provider's limits."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("order-push-consumer")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
