"""Kafka client options from the settings: a missing TLS file is named with its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.errors import SettingsError
from consumer.kafka.clients import client_kwargs
from consumer.settings import KafkaSettings, SecurityProtocol


@pytest.mark.parametrize("field", ["ssl_cafile", "ssl_certfile", "ssl_keyfile"])
def test_a_missing_tls_file_is_named_with_its_variable(tmp_path: Path, field: str) -> None:
    missing = tmp_path / "absent.pem"
    settings = KafkaSettings(security_protocol=SecurityProtocol.SSL, **{field: missing})

    with pytest.raises(SettingsError) as caught:
        client_kwargs(settings)

    assert str(caught.value) == f"KAFKA_{field.upper()}='{missing}': no such file"


def test_a_tls_file_that_is_no_certificate_says_it_cannot_be_loaded(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    settings = KafkaSettings(security_protocol=SecurityProtocol.SSL, ssl_cafile=garbage)

    with pytest.raises(SettingsError, match=r"KAFKA_SSL_CAFILE / .* cannot be loaded: "):
        client_kwargs(settings)
