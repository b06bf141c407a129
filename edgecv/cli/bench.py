"""`edgecv bench`: every variant of a model measured on the same inputs, as a table, bench.json and notes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import (
    ALLOW_FALLBACK,
    DATA_ROOT,
    KEEP_GOING,
    MODEL_DATA,
    PROVIDER,
    STREAM,
    TRUST,
    TRUST_CODE,
    StatusLine,
    err,
    out,
    print_wide,
    run_guarded,
    runtime_options,
    write_report,
)
from edgecv.cli.specflags import SpecFlags, spec_flags
from edgecv.core.errors import EdgecvError
from edgecv.report.cells import end_to_end_split, fmt_bytes, paired_text, with_interval
from edgecv.rundir import RunDir


def print_bench(report) -> None:
    """The variants sorted by p50 latency with 95% intervals, the Pareto front marked, where each number comes
    from, then the recommendation."""

    env = report.env
    batch_cols = sorted({int(b) for v in report.variants for b in v.throughput})
    table = Table(title=f"{escape(env['cpu_features'])}, {env['threads']} threads, onnxruntime "
                        f"{env['onnxruntime']}" + (f", torch {env['torch']}" if env.get("torch") else ""))
    for col in ("variant", "provider", "size", "p50 ms (95% CI)", "p99 ms", "e2e p50 ms",
                *(f"img/s b{b}" for b in batch_cols),
                "memory", "cold start ms", "accuracy (95% CI)", "vs " + (report.reference or "reference"), "ECE",
                "agree"):
        table.add_column(col, justify="left" if col in ("variant", "provider") else "right", no_wrap=col == "variant")
    for v in report.variants:
        lat, ci, m = v.latency_ms, v.latency_ci_ms, v.metrics
        mem = v.memory or {}
        cold = v.cold_start_ms
        table.add_row(
            escape(f"{v.name} *" if v.pareto else v.name), v.provider, fmt_bytes(v.size_bytes),
            with_interval(lat["p50"], ci.get("p50")) if "p50" in lat else "-",
            f"{lat['p99']:.3f}" if "p99" in lat else "-",
            f"{v.end_to_end['p50_ms']:.3f}" if v.end_to_end else "-",
            *(f"{v.throughput[str(b)]:,.0f}" if str(b) in v.throughput else "-" for b in batch_cols),
            fmt_bytes(mem["model_bytes"]) if mem.get("model_bytes") else "-",
            f"{cold['load']:.1f} + {cold['first_run']:.1f}" if cold else "-",
            with_interval(100 * m["accuracy"], [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None,
                          "{:.1f}"),
            "reference" if v.name == report.reference else paired_text(m),
            f"{m['ece']:.4f}", f"{m['agreement']:.2%}" if m.get("agreement") is not None else "-")
    print_wide(table, 200)
    if report.sweep:
        _print_sweep(report)
    method = report.method
    lines = ["* on the Pareto front: no other variant is as accurate and faster beyond noise, or more accurate and "
             "not slower beyond noise"]
    if method:
        lines += [f"latency: {method['latency']}", f"accuracy: {method['accuracy']}", f"memory: {method['memory']}; "
                  "cold start = session creation + first batch-1 inference, in that process"]
        if method.get("int8_calibration"):
            lines.append(f"int8 calibration: {method['int8_calibration']}")
        if method.get("end_to_end"):
            lines.append(f"e2e (end to end): {method['end_to_end']}")
    lines += [f"e2e split for {v.name}: {end_to_end_split(v.end_to_end)}" for v in report.variants[:1]
              if v.end_to_end]
    if report.profile_command:
        lines.append(f"layer by layer: {report.profile_command}")
    for line in lines:
        out.print(escape(line), soft_wrap=True)
    if report.recommendation:
        out.print(f"[bold]recommended:[/] {escape(report.recommendation)}", soft_wrap=True)
    if report.within_budget:
        out.print(f"[bold]latency budget:[/] {escape(report.within_budget)}", soft_wrap=True)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)


def _print_sweep(report) -> None:
    """Every variant at every thread setting and batch size: the median call's images/s and one call's
    p50 and p99."""
    order = {v.name: i for i, v in enumerate(report.variants)}
    table = Table(title="deployment sweep: every variant x setting x batch size")
    for col in ("variant", "setting", "batch", "p50 ms per call", "p99 ms per call", "img/s"):
        table.add_column(col, justify="left" if col in ("variant", "setting") else "right",
                         no_wrap=col == "variant")
    for p in sorted(report.sweep, key=lambda p: (order.get(p["variant"], 0), p["setting"], p["batch"])):
        table.add_row(escape(p["variant"]), escape(p["setting"]), str(p["batch"]), f"{p['p50_ms']:.3f}",
                      f"{p['p99_ms']:.3f}", f"{p['images_per_s']:,.0f}")
    print_wide(table, 120)


@spec_flags
def bench_cmd(
    models: list[Path] = typer.Argument(..., help="Run directories (every variant in them) or model files."),
    provider: str = PROVIDER,
    runtimes: str = typer.Option("onnxruntime", "--runtimes",
                                 help="Engines for the ONNX files, comma-separated: every file gets a row on each "
                                      "(onnxruntime, openvino), e.g. --runtimes onnxruntime,openvino."),
    batch_sizes: str = typer.Option("1,8,64", "--batch-sizes", help="Batch sizes for throughput."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls before each measurement (past 3, only as many "
                                                     "as fit in one round's slice)."),
    iters: int = typer.Option(None, "--iters",
                              help="Timed calls per variant and batch size [default: as many as fit in --seconds]."),
    seconds: float = typer.Option(1.0, "--seconds",
                                  help="Timed seconds per variant and batch size (split over the rounds)."),
    rounds: int = typer.Option(10, "--rounds", help="Interleaved timing rounds; intervals resample them."),
    min_speedup: float = typer.Option(1.05, "--min-speedup",
                                      help="Call a variant faster only when the 95% interval of its speed-up is "
                                           "at or above this."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate",
                                 help="Measure memory and cold start in a fresh process per variant."),
    end_to_end: bool = typer.Option(True, "--end-to-end/--no-end-to-end",
                                    help="Also time each variant as an app runs it: edgecv.Predictor from a "
                                         "640x480 JPEG's bytes to the label, split into decode, preprocess, "
                                         "inference and postprocess."),
    threads: str = typer.Option(None, "--threads",
                                help="Intra-op threads [default: the runtime's]; a comma list (1,2) sweeps them: "
                                     "the table is timed at the first, and every variant and batch size is timed "
                                     "again at each further one, in sessions of its own (and OpenVINO's rows "
                                     "under its THROUGHPUT hint)."),
    max_drop: float = typer.Option(1.0, "--max-accuracy-drop",
                                   help="Recommend the fastest variant within this many points of fp32."),
    max_latency_ms: float = typer.Option(None, "--max-latency-ms",
                                         help="A latency budget: also name the variant, thread setting and "
                                              "batch size with the most images/s whose p99 call is within it, "
                                              "or the one that comes closest."),
    allow_fallback: bool = ALLOW_FALLBACK,
    graph_opt: str = typer.Option("all", "--graph-optimization", help="disable | basic | extended | all."),
    cudnn: str = typer.Option("exhaustive", "--cudnn-algo-search", help="CUDA: exhaustive | heuristic | default."),
    trt_fp16: bool = typer.Option(False, "--trt-fp16", help="TensorRT: allow fp16 kernels."),
    trt_cache: Path = typer.Option(None, "--trt-cache", help="TensorRT: keep built engines in this folder."),
    data: str = MODEL_DATA,
    data_root: Path = DATA_ROOT,
    json_file: Path = typer.Option(None, "--json", help="Write the report as JSON [default: RUN_DIR/bench.json]."),
    trust: bool = TRUST,
    trust_code: bool = TRUST_CODE,
    keep_going: bool = KEEP_GOING,
    stream: bool = STREAM,
    *,
    flags: SpecFlags,
) -> None:
    """Benchmark every variant of a model: batch-1 latency percentiles with 95% intervals from interleaved
    rounds, throughput per batch size, memory and cold start from a fresh process per variant, and the metrics
    suite on the same test images (accuracy intervals, McNemar's test against fp32), with the provider that
    really ran. A variant is called faster only beyond noise.

    Example: edgecv bench runs/lenet5-digits --provider cpu --batch-sizes 1,8,64

    The model-fact flags (--labels, --resize, ...) state what a file from elsewhere does not say; they apply to
    every file given. Such a file is scored on every image of --data; an edgecv model on its test split.
    """

    def body() -> None:
        from edgecv.measure.bench import BenchOptions, bench

        sizes = _whole_numbers("--batch-sizes", batch_sizes)
        thread_list = tuple(dict.fromkeys(_whole_numbers("--threads", threads)))  # each setting once
        opts = BenchOptions(batch_sizes=sizes, warmup=warmup, iters=iters, seconds=seconds, rounds=rounds,
                            max_accuracy_drop=max_drop, min_speedup=min_speedup, isolate=isolate,
                            end_to_end=end_to_end, max_latency_ms=max_latency_ms, sweep_threads=thread_list[1:])
        first_threads = thread_list[0] if thread_list else None
        options = runtime_options(provider, first_threads, allow_fallback, graph_opt, cudnn, trt_fp16, trt_cache,
                                  trust, trust_code)
        with StatusLine("benchmarking") as status:
            report = bench(models, options, opts, data=data, data_root=str(data_root) if data_root else None,
                           progress=status.update, keep_going=keep_going, stream=stream,
                           runtimes=tuple(r.strip() for r in runtimes.split(",") if r.strip()),
                           facts=flags.stated(), label_map=flags.folder_names())
        print_bench(report)
        target = json_file or (RunDir(models[0]).bench if len(models) == 1 and models[0].is_dir() else None)
        if target is not None:
            write_report(target, report.to_dict())

    run_guarded(body)


def _whole_numbers(flag: str, text: str | None) -> tuple[int, ...]:
    """``"1,8,64"`` -> (1, 8, 64); None -> (); anything else is a one-line error naming the flag."""
    if text is None:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EdgecvError(f"{flag} takes comma-separated whole numbers, got {text!r}") from None
