"""Push providers: each one builds requests and maps answers, nothing more.

Rate limits, retries and scheduling belong to the dispatcher; a provider raises
``TransientError`` (retry) or ``ProviderRejected`` (dead-letter) from
``consumer.errors`` and never lets an ``httpx`` error escape.
"""
