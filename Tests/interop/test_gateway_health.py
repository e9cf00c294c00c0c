"""/healthz and the store's health: 200 {"status":"ok"} while the store writes, 503 with
store_unwritable once it cannot (here: the database past store_max_size, which the store
treats like a full disk), and the parley_store_writable gauge saying the same."""

from prometheus_client.parser import text_string_to_metric_families

from chat import chat_templates  # noqa: F401  (fixture)
from httpraw import gateway, get  # noqa: F401  (fixture)


def gauge(port, name):
    page = get(port, "/metrics").body.decode()
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def test_healthz_ok_while_the_store_writes(gateway):
    g = gateway()
    r = get(g.http_port, "/healthz")
    assert (r.status, r.json()) == (200, {"status": "ok"}), r
    assert gauge(g.http_port, "parley_store_writable") == 1


def test_healthz_503_when_the_store_cannot_write(gateway):
    g = gateway(config="store_max_size = 4K\n")
    r = get(g.http_port, "/healthz")
    assert r.status == 503, r
    body = r.json()
    assert body["status"] == "unavailable" and body["error"] == "store_unwritable", body
    assert gauge(g.http_port, "parley_store_writable") == 0
