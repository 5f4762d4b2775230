"""deploy/grafana/openplatform.json: an importable Grafana dashboard whose every query names a
metric that ``/metrics`` exports (SPEC §10; the metrics are listed in ``web/metrics.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from openplatform.services.admin_keys import AdminKeys
from tests.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "openplatform.json"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
DATASOURCE = "${DS_PROMETHEUS}"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}  # fmt: skip


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def expressions(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names or values (quoted strings, ``{…}``, ``by (…)`` and ``[…]`` removed)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        follows = bare[match.end() :].lstrip()[:1]
        if follows != "(" and match.group().lower() not in PROMQL_WORDS:
            found.add(match.group())
    return found


def exported_names(text: str) -> set[str]:
    """Every sample name in a /metrics answer (``x_total``, ``x_bucket``, ``x_sum``, …)."""
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metric_names_are_read_out_of_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, endpoint) (rate(a_bucket{endpoint=~"x|y",code!="0"}[$__rate_interval])))'
        " / on (endpoint) group_left sum without (code) (rate(b_total[5m])) > bool 0 or vector(1)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    (source,) = board["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30 and board["id"] is None
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in ("timeseries", "stat") and panel["title"] and panel["description"], panel
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE and target["expr"].strip() and target["refId"]
    queried = " ".join(expressions(board))
    for wanted in ("openplatform_requests_total", "histogram_quantile", "openplatform_request_seconds_bucket",
                   "openplatform_db_batch_operations", "openplatform_cache_lookups_total",
                   "openplatform_revocation_lag_seconds", "openplatform_webhook_backlog"):  # fmt: skip
        assert wanted in queried, wanted


async def test_every_metric_the_dashboard_queries_is_exported(harness: Harness) -> None:
    world = await harness.world()
    await harness.app_token(world)
    tokens = await harness.user_tokens(world)
    assert (await harness.refresh(world, tokens["refresh_token"])).json()["code"] == 0
    refused = await harness.client.post("/oauth/credit/token", data={"app_id": world.app_id, "secret": "wrong"})
    assert refused.json()["code"] != 0
    store = harness.platform.store
    await harness.admin.set_status(world.app_id, "suspended")  # an invalidation record, for the poller
    await harness.wait_for_invalidation()
    store.report_lookups()
    _created, key = await AdminKeys(harness.admin.stores, harness.admin.keyring).create("prometheus")

    answer = await harness.client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200
    exported = exported_names(answer.text)
    queried = set().union(*map(metric_names, expressions(dashboard())))
    assert queried and queried <= exported, sorted(queried - exported)

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    for endpoint in ("credit_token", "access_token", "refresh_token"):  # the grants panel's series
        assert samples[("openplatform_requests_total", (("code", "0"), ("endpoint", endpoint)))] >= 1, endpoint
    assert any(name == "openplatform_requests_total" and dict(labels)["code"] != "0" and value >= 1
               for (name, labels), value in samples.items())  # fmt: skip
    assert sum(v for (n, _), v in samples.items() if n == "openplatform_cache_lookups_total") >= 1
    assert samples[("openplatform_revocation_lag_seconds_count", (("path", "poll"),))] >= 1

    families = {f.name for f in text_string_to_metric_families(answer.text) if f.name.startswith("openplatform_")}
    families = {name for name in families if not name.endswith("_created")}  # creation times, not metrics
    assert documented_metrics() == families  # docs/deployment.md's table names every metric, no other


def monitoring_section() -> str:
    return DEPLOYMENT.read_text().split("## Monitoring\n", 1)[1].split("\n## ", 1)[0]


def documented_metrics() -> set[str]:
    """The metric families of docs/deployment.md's Monitoring table (a counter's family drops ``_total``)."""
    names = re.findall(r"^\| `(openplatform_\w+)` \|", monitoring_section(), re.MULTILINE)
    return {name.removesuffix("_total") for name in names}


def test_the_documented_scrape_sends_the_admin_key_as_a_bearer_token() -> None:
    (config,) = re.findall(r"```yaml\n(.*?)```", monitoring_section(), re.DOTALL)
    (job,) = yaml.safe_load(config)["scrape_configs"]
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "deploy/grafana/openplatform.json" in monitoring_section()
