"""Logging renders one format for structlog and stdlib loggers; metrics reach Prometheus."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import structlog

from whispr.config import load_settings
from whispr.telemetry import (
    METRICS_CONTENT_TYPE,
    ObservedGauge,
    TalliedCounter,
    configure_logging,
    configure_metrics,
    get_meter,
    metrics_exposition,
)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and structlog back as they were, for the tests after this one."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_from_structlog_and_stdlib_loggers() -> None:
    buffer = io.StringIO()
    settings = load_settings(env={"WHISPR_LOG_FORMAT": "json", "WHISPR_JWT_SECRET": "k" * 32})
    configure_logging(settings, stream=buffer)

    structlog.get_logger("whispr.test").info("message stored", conversation="c1", seq=7)
    logging.getLogger("supervisors").warning("child %s crashed", "conv:c1")

    first, second = json_lines(buffer)
    assert first["event"] == "message stored"
    assert first["level"] == "info"
    assert first["logger"] == "whispr.test"
    assert first["conversation"] == "c1"
    assert first["seq"] == 7
    assert second["event"] == "child conv:c1 crashed"
    assert second["level"] == "warning"
    assert second["logger"] == "supervisors"
    for line in (first, second):
        timestamp = line["timestamp"]
        assert isinstance(timestamp, str)
        assert timestamp.endswith("Z")  # ISO 8601, UTC


@pytest.mark.usefixtures("restore_logging")
def test_level_is_respected_for_both_kinds_of_logger() -> None:
    buffer = io.StringIO()
    settings = load_settings(
        env={
            "WHISPR_LOG_FORMAT": "json",
            "WHISPR_LOG_LEVEL": "warning",
            "WHISPR_JWT_SECRET": "k" * 32,
        }
    )
    configure_logging(settings, stream=buffer)

    structlog.get_logger("whispr.test").info("quiet")
    logging.getLogger("supervisors").info("quiet too")
    structlog.get_logger("whispr.test").error("loud")

    assert [line["event"] for line in json_lines(buffer)] == ["loud"]


@pytest.mark.usefixtures("restore_logging")
def test_exceptions_are_structured_without_frame_locals() -> None:
    buffer = io.StringIO()
    settings = load_settings(env={"WHISPR_LOG_FORMAT": "json", "WHISPR_JWT_SECRET": "k" * 32})
    configure_logging(settings, stream=buffer)

    password = "hunter2-in-a-local"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("supervisors").exception("actor crashed")

    (line,) = json_lines(buffer)
    assert line["event"] == "actor crashed"
    assert line["level"] == "error"
    assert "RuntimeError" in json.dumps(line["exception"])
    assert password not in buffer.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_the_development_secret_is_announced_at_start() -> None:
    buffer = io.StringIO()
    configure_logging(load_settings(env={"WHISPR_LOG_FORMAT": "json"}), stream=buffer)
    (line,) = json_lines(buffer)
    assert line["level"] == "warning"
    assert "WHISPR_JWT_SECRET" in str(line["event"])


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_readable_text() -> None:
    buffer = io.StringIO()
    settings = load_settings(env={"WHISPR_LOG_FORMAT": "console", "WHISPR_JWT_SECRET": "k" * 32})
    configure_logging(settings, stream=buffer)
    logging.getLogger("supervisors").warning("restarting %s", "child")
    text = buffer.getvalue()
    assert "restarting child" in text
    assert "warning" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    settings = load_settings(env={"WHISPR_LOG_FORMAT": "json", "WHISPR_JWT_SECRET": "k" * 32})
    configure_logging(settings, stream=first)
    configure_logging(settings, stream=second)
    logging.getLogger("whispr.test").warning("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once"]


def test_a_counter_shows_up_in_the_exposition() -> None:
    name = f"whispr_test_sends_{uuid.uuid4().hex[:8]}"
    counter = get_meter("whispr.test").create_counter(name, description="sends in a test")
    counter.add(2, {"outcome": "ok"})
    counter.add(1, {"outcome": "ok"})

    text = metrics_exposition().decode()

    sample = next(line for line in text.splitlines() if line.startswith(f"{name}_total{{"))
    assert 'outcome="ok"' in sample
    assert sample.endswith(" 3.0")
    assert f"# TYPE {name}_total counter" in text
    assert "process_resident_memory_bytes" in text or "python_info" in text
    assert METRICS_CONTENT_TYPE.startswith("text/plain")


def samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{name}{{")]


def by_outcome(lines: list[str]) -> dict[str, str]:
    """Each sample's value by its ``outcome`` label (one sample per outcome expected)."""
    values = {line.split('outcome="')[1].split('"')[0]: line.rsplit(" ", 1)[1] for line in lines}
    assert len(values) == len(lines), lines
    return values


def test_a_tallied_counter_is_exported_like_a_counter_with_one_total_per_attribute_set() -> None:
    name = f"whispr_test_joins_{uuid.uuid4().hex[:8]}"
    joins = TalliedCounter("whispr.test", name, "joins in a test")
    joins.add(1, {"kind": "user", "outcome": "ok"})
    joins.add(2, {"outcome": "ok", "kind": "user"})  # the same set, keys in another order
    joins.add(1, {"kind": "user", "outcome": "forbidden"})

    text = metrics_exposition().decode()

    assert f"# TYPE {name}_total counter" in text
    assert by_outcome(samples(text, f"{name}_total")) == {"forbidden": "1.0", "ok": "3.0"}
    joins.add(1, {"kind": "user", "outcome": "ok"})  # cumulative: the next scrape sees 4
    again = samples(metrics_exposition().decode(), f"{name}_total")
    assert by_outcome(again) == {"forbidden": "1.0", "ok": "4.0"}


def test_a_tallied_up_down_counter_is_a_gauge_of_its_current_value() -> None:
    name = f"whispr_test_open_{uuid.uuid4().hex[:8]}"
    open_now = TalliedCounter("whispr.test", name, "open in a test", up_down=True)
    before = samples(metrics_exposition().decode(), name)
    assert [line.rsplit(" ", 1)[1] for line in before] == ["0.0"]  # present from the start
    open_now.add(1)
    open_now.add(1)
    open_now.add(-1)

    text = metrics_exposition().decode()

    assert f"# TYPE {name} gauge" in text
    assert [line.rsplit(" ", 1)[1] for line in samples(text, name)] == ["1.0"]


class _Holder:
    def __init__(self, count: int) -> None:
        self.count = count


def test_an_observed_gauge_reads_its_live_objects_when_collected() -> None:
    name = f"whispr_test_live_{uuid.uuid4().hex[:8]}"
    live = ObservedGauge("whispr.test", name, "live in a test", lambda holder: holder.count)
    first, second = _Holder(2), _Holder(3)
    live.watch(first)
    live.watch(second)

    text = metrics_exposition().decode()

    assert f"# TYPE {name} gauge" in text
    assert [line.rsplit(" ", 1)[1] for line in samples(text, name)] == ["5.0"]
    first.count = 0  # read at collection, never written to
    del second  # held weakly: a gone object drops out
    after = samples(metrics_exposition().decode(), name)
    assert [line.rsplit(" ", 1)[1] for line in after] == ["0.0"]


def test_configure_metrics_is_idempotent() -> None:
    assert configure_metrics() is configure_metrics()
