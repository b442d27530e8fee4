"""The AppMetrica Push API provider (the second provider), and its Reporting API client.

``client`` speaks HTTP to the Push API, ``payload`` builds `send-batch` bodies,
``provider`` is the ``PushProvider`` the dispatcher drives.
"""

from consumer.providers.appmetrica.provider import AppMetricaProvider

__all__ = ["AppMetricaProvider"]
