"""Tracing's configuration from the standard ``OTEL_*`` variables, the resource, the codec."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from actors.events import decode_event, encode_event, trace_of
from whispr.config import load_settings
from whispr.telemetry import node_resource
from whispr.tracing import DEFAULT_SAMPLE_RATIO, TracingError, exporter_names, tracer_provider

SETTINGS = load_settings(env={"WHISPR_NODE_NAME": "node-7"})


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
    ):
        monkeypatch.delenv(name, raising=False)


def test_no_exporter_named_means_no_provider() -> None:
    assert exporter_names({}) == []
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracer_provider(SETTINGS) is None


def test_exporters_are_named_as_the_specification_says() -> None:
    assert exporter_names({"OTEL_TRACES_EXPORTER": "OTLP, console"}) == [
        "otlp_proto_grpc",
        "console",
    ]


def test_an_exporter_that_is_not_installed_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(TracingError, match="'zipkin'"):
        tracer_provider(SETTINGS)


def test_the_default_sampler_samples_a_small_share_of_root_spans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracer_provider(SETTINGS)
    assert provider is not None
    assert isinstance(provider.sampler, ParentBasedTraceIdRatio)
    assert (
        provider.sampler.get_description()
        == ParentBasedTraceIdRatio(DEFAULT_SAMPLE_RATIO).get_description()
    )
    assert provider.resource.attributes["service.instance.id"] == "node-7"
    provider.shutdown()


def test_the_sampler_variables_are_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = tracer_provider(SETTINGS)
    assert provider is not None
    assert provider.sampler.get_description() == "TraceIdRatioBased{0.25}"
    provider.shutdown()


def test_the_resource_names_the_node_and_lets_the_operator_override() -> None:
    attributes = node_resource(SETTINGS).attributes
    assert attributes["service.name"] == "whispr"
    assert attributes["service.instance.id"] == "node-7"


def test_otel_service_name_and_resource_attributes_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chat-core")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    attributes = node_resource(SETTINGS).attributes
    assert attributes["service.name"] == "chat-core"
    assert attributes["deployment.environment"] == "prod"
    assert attributes["service.instance.id"] == "node-7"


def test_an_event_carries_a_trace_only_when_given_one() -> None:
    plain = encode_event("new_message", {"message": {"seq": 1}})
    assert plain.count(b"\n") == 1
    assert trace_of(plain) == ""
    assert decode_event(plain).trace == ""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced = encode_event("new_message", {"message": {"seq": 2, "content": "a\nb"}}, parent)
    assert trace_of(traced) == parent
    event = decode_event(traced)
    assert (event.trace, event.seq) == (parent, 2)
    assert event.payload == encode_event("x", {"message": {"seq": 2, "content": "a\nb"}})[2:]
