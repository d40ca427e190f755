"""What tracing costs a message: the push path's tracing calls, off and at the default sampling.

``whispr bench`` measures a node under load, where tracing's share (a few µs of a message's
few hundred) is smaller than the run-to-run noise of a shared machine. This measures the
tracing alone, in the CPU time of one process: for each message, the calls the code makes,
in its order (``whispr/gateway/connection.py``'s push span, ``actors/messaging.py``'s
``sampled_context``, and for a sampled message ``actors/conversation.py``'s three spans with
the ``traceparent`` of the publish, and ``whispr/broker/redis.py``'s remote delivery span).

Modes, each in a fresh process (a tracer provider is set once per process):

``off``
    no provider, as a node without ``OTEL_TRACES_EXPORTER``: every span is the API's no-op.
``default``
    the node's default sampler (``whispr/tracing.py``: parent-based, 1 in 100 roots) and a
    batch span processor whose exporter encodes each batch as OTLP protobuf and discards it:
    the node's side of an export, without a collector.

Each mode gives ``cpu_us_per_message`` (the best of ``repeats`` rounds, process CPU time, the
export thread included) and ``spans_exported``. ``python -m whispr.bench tracing`` writes them
to ``tracing.json`` and ``tracing.md``; ``python -m whispr.bench.tracing`` prints them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import SpanKind

from actors.tracing import TRACER, parent_of, sampled_context, span_context, traceparent
from whispr.bench.report import machine, markdown_table, write_json, write_text
from whispr.tracing import DEFAULT_SAMPLE_RATIO

__all__ = ["MODES", "measure", "run_mode", "run_suite"]

MODES: Final = ("off", "default")


class _Discard(SpanExporter):
    """Encodes each batch as the OTLP exporter would, then drops it; counts the spans."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _message() -> None:
    """One ``send_message`` push's tracing calls, on the sender's node and one other."""
    push = TRACER.start_span("push send_message", kind=SpanKind.SERVER)
    if not push.is_recording():
        sampled_context()  # Messaging._ask, for the call
        return
    push.set_attribute("whispr.topic", "conversation:c")
    token = otel_context.attach(span_context(push))
    try:
        parent = sampled_context()
        send = TRACER.start_span(
            "conversation send",
            context=parent,
            attributes={"whispr.conversation_id": "c", "whispr.client_id": "m"},
        )
        commit = TRACER.start_span(
            "group commit", context=span_context(send), attributes={"whispr.chunk_size": 1}
        )
        commit.set_attribute("whispr.status", "inserted")
        commit.end()
        publish = TRACER.start_span(
            "publish conversation:c",
            context=span_context(send),
            kind=SpanKind.PRODUCER,
            attributes={"whispr.seq": 1},
        )
        sent = traceparent(publish)
        publish.end()
        send.end()
        with TRACER.start_as_current_span(
            "deliver conversation:c",
            context=parent_of(sent),
            kind=SpanKind.CONSUMER,
            attributes={"whispr.node": "b"},
        ):
            pass
    finally:
        otel_context.detach(token)
        push.end()


def run_mode(mode: str, messages: int, repeats: int) -> dict[str, Any]:
    """Measure ``mode`` in this process (which it changes for good: run it in a fresh one)."""
    exporter = _Discard()
    provider: TracerProvider | None = None
    if mode == "default":
        provider = TracerProvider(sampler=ParentBasedTraceIdRatio(DEFAULT_SAMPLE_RATIO))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    elif mode != "off":
        msg = f"unknown mode {mode!r}"
        raise ValueError(msg)
    best = float("inf")
    for _ in range(repeats):
        began = time.process_time()
        for _ in range(messages):
            _message()
        if provider is not None:
            provider.force_flush()  # the export of this round's spans counts in its CPU
        best = min(best, (time.process_time() - began) / messages * 1e6)
    if provider is not None:
        provider.shutdown()
    return {"mode": mode, "cpu_us_per_message": round(best, 2), "spans_exported": exporter.spans}


def measure(messages: int = 200_000, repeats: int = 5) -> list[dict[str, Any]]:
    """Every mode, each in a fresh subprocess; their figures in :data:`MODES` order."""
    results = []
    for mode in MODES:
        argv = [sys.executable, "-m", "whispr.bench.tracing", "--mode", mode]
        argv += ["--messages", str(messages), "--repeats", str(repeats)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out))
    return results


def run_suite(out: Path, quick: bool = False) -> dict[str, Any]:
    """Measure both modes; write tracing.json and tracing.md under ``out``."""
    messages = 20_000 if quick else 200_000
    results = measure(messages, repeats=3 if quick else 5)
    report: dict[str, Any] = {
        "messages": messages,
        "modes": results,
        "machine": machine(),
    }
    write_json(out / "tracing.json", report)
    table = markdown_table(
        ["mode", "CPU per message (µs)", "spans exported"],
        [[r["mode"], r["cpu_us_per_message"], r["spans_exported"]] for r in results],
    )
    write_text(
        out / "tracing.md",
        "# Tracing: the push path's tracing calls per message\n\n"
        f"{messages:,} messages per round, best of the rounds; see whispr/bench/tracing.py.\n\n"
        + table,
    )
    for r in results:
        print(f"[tracing] {r['mode']}: {r['cpu_us_per_message']} us per message", flush=True)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=MODES, help="measure one mode in this process")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.mode is not None:
        print(json.dumps(run_mode(args.mode, args.messages, args.repeats)))
    else:
        for result in measure(args.messages, args.repeats):
            print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
