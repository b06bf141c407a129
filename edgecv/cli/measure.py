"""`edgecv eval` and `edgecv bench`: the metrics suite for one model file, and every variant measured on
the same inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from edgecv.cli.common import ImageBar, StatusLine, err, out, print_wide, run_guarded, spec_from_flags
from edgecv.core.errors import EdgecvError
from edgecv.core.fsutil import write_json
from edgecv.report.cells import fmt_bytes, paired_text, with_interval
from edgecv.rundir import RunDir
from edgecv.runtimes import RuntimeOptions

MAX_MATRIX = 20  # classes up to which the confusion matrix is printed

PROVIDER_HELP = ("cpu | cuda | tensorrt | openvino (ONNX Runtime's providers; torch files: cpu | cuda; "
                 "--runtime openvino: cpu | gpu | npu).")
RUNTIME_HELP = ("Engine for ONNX files: onnxruntime, or openvino (OpenVINO's own runtime, pip install "
                "'edgecv[openvino]').")


KEEP_GOING_HELP = "Leave out a folder's unreadable images instead of refusing the folder."
STREAM_HELP = ("Folder data: decode the images as they are scored instead of loading them all first [default: "
               "when the folder would take more than EDGECV_RESIDENT_MB, 1024].")
TRUST_HELP = ("Run TorchScript files that edgecv did not write for this user. TorchScript runs the code inside "
              "the file: pass this only for files from a source you trust.")


def _runtime_options(provider: str, threads: int | None, allow_fallback: bool, graph_opt: str = "all",
                     cudnn: str = "exhaustive", trt_fp16: bool = False, trt_cache: Path | None = None,
                     trust: bool = False):
    return RuntimeOptions(provider=provider, threads=threads, allow_fallback=allow_fallback,
                          graph_optimization=graph_opt, cudnn_algo_search=cudnn, trt_fp16=trt_fp16,
                          trt_cache=str(trt_cache) if trt_cache else None, trust_torchscript=trust)


def _write_report(path: Path, data: dict) -> None:
    """Write a JSON report atomically and say where; an unwritable path is a one-line error."""
    try:
        write_json(path, data)
    except OSError as exc:
        raise EdgecvError(f"cannot write {path}: {exc.strerror or exc}") from None
    out.print(f"[green]wrote[/] {escape(str(path))}", soft_wrap=True)


def print_eval(result) -> None:
    """Overall metrics, per-class table and (for up to 20 classes) the confusion matrix."""
    m = result.metrics
    overall = Table(title=f"{escape(Path(result.model).name)} ({result.variant} on {result.provider}): "
                          f"{escape(result.data)} {result.split}, {m['num_samples']} images")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    ci = m.get("accuracy_ci")
    rows = [("accuracy", f"{m['accuracy']:.2%}" + (f" (95% CI {ci[0]:.2%}-{ci[1]:.2%})" if ci else "")),
            ("top-5 accuracy", f"{m['top5_accuracy']:.2%}" if m["top5_accuracy"] is not None else "-"),
            ("loss (NLL)", f"{m['loss']:.4f}"),
            ("macro precision / recall / F1",
             f"{m['macro_precision']:.4f} / {m['macro_recall']:.4f} / {m['macro_f1']:.4f}"),
            ("weighted precision / recall / F1",
             f"{m['weighted_precision']:.4f} / {m['weighted_recall']:.4f} / {m['weighted_f1']:.4f}"),
            ("ECE (15 bins)", f"{m['ece']:.4f}"),
            ("mean confidence right / wrong", " / ".join(
                f"{v:.3f}" if v is not None else "-" for v in (m["confidence_right"], m["confidence_wrong"])))]
    for name, value in rows:
        overall.add_row(name, value)
    out.print(overall)
    per = Table(title="per class")
    for col in ("class", "precision", "recall", "F1", "support", "one-vs-all acc"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for row in m["per_class"]:
        per.add_row(escape(row["label"]), f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                    str(row["support"]), f"{row['one_vs_all_accuracy']:.4f}")
    out.print(per)
    labels = [row["label"] for row in m["per_class"]]
    if len(labels) <= MAX_MATRIX:
        cm = Table(title="confusion matrix (rows: true, columns: predicted)")
        cm.add_column("")
        for label in labels:
            cm.add_column(escape(label[:8]), justify="right")
        for i, (label, counts) in enumerate(zip(labels, m["confusion_matrix"], strict=True)):
            cells = [f"[bold]{c}[/]" if i == j else str(c) if c else "." for j, c in enumerate(counts)]
            cm.add_row(escape(label[:12]), *cells)
        out.print(cm)


def eval_cmd(
    model: Path = typer.Argument(..., help="A checkpoint (.pt), a TorchScript file (.pt) or an ONNX file."),
    data: str = typer.Option(None, "--data", help="Data set [default: the one the model was trained on]."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live."),
    split: str = typer.Option("test", "--split", help="train | val | test."),
    provider: str = typer.Option("cpu", "--provider", help=PROVIDER_HELP),
    runtime: str = typer.Option("onnxruntime", "--runtime", help=RUNTIME_HELP),
    threads: int = typer.Option(None, "--threads", help="Intra-op threads [default: the runtime's]."),
    allow_fallback: bool = typer.Option(False, "--allow-fallback",
                                        help="Accept ONNX Runtime running on another provider than asked."),
    json_file: Path = typer.Option(None, "--json", help="Also write the metrics as JSON to this file."),
    trust: bool = typer.Option(False, "--trust-torchscript", help=TRUST_HELP),
    keep_going: bool = typer.Option(False, "--keep-going", help=KEEP_GOING_HELP),
    stream: bool = typer.Option(None, "--stream/--no-stream", help=STREAM_HELP),
    labels: str = typer.Option(None, "--labels", help="For a model without a spec: class names, comma-separated."),
    mean: str = typer.Option(None, "--mean", help="For a model without a spec: per-channel mean (0..1)."),
    std: str = typer.Option(None, "--std", help="For a model without a spec: per-channel std (0..1)."),
    input_shape: str = typer.Option(None, "--input-shape", help="For a model without a spec: C,H,W."),
) -> None:
    """Evaluate a model file with the full metrics suite: accuracy, top-5, loss, per-class scores,
    confusion matrix and calibration.

    Example: edgecv eval runs/lenet5-digits/model.int8.onnx --json int8.json
    """

    def body() -> None:
        from edgecv.measure.evaluate import evaluate

        spec = spec_from_flags(labels, mean, std, input_shape)
        options = replace(_runtime_options(provider, threads, allow_fallback, trust=trust), runtime=runtime)
        with ImageBar(f"scoring {model.name}") as bar:
            result = evaluate(model, options, data=data, data_root=str(data_root) if data_root else None,
                              split=split, spec=spec, keep_going=keep_going, stream=stream, progress=bar.update)
        print_eval(result)
        if json_file is not None:
            _write_report(json_file, result.to_dict())

    run_guarded(body)


def print_bench(report) -> None:
    """The variants sorted by p50 latency with 95% intervals, the Pareto front marked, where each number comes
    from, then the recommendation."""

    env = report.env
    batch_cols = sorted({int(b) for v in report.variants for b in v.throughput})
    table = Table(title=f"{escape(env['cpu_features'])}, {env['threads']} threads, onnxruntime "
                        f"{env['onnxruntime']}" + (f", torch {env['torch']}" if env.get("torch") else ""))
    for col in ("variant", "provider", "size", "p50 ms (95% CI)", "p99 ms", *(f"img/s b{b}" for b in batch_cols),
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
            *(f"{v.throughput[str(b)]:,.0f}" if str(b) in v.throughput else "-" for b in batch_cols),
            fmt_bytes(mem["model_bytes"]) if mem.get("model_bytes") else "-",
            f"{cold['load']:.1f} + {cold['first_run']:.1f}" if cold else "-",
            with_interval(100 * m["accuracy"], [100 * c for c in m["accuracy_ci"]] if m.get("accuracy_ci") else None,
                          "{:.1f}"),
            "reference" if v.name == report.reference else paired_text(m),
            f"{m['ece']:.4f}", f"{m['agreement']:.2%}" if m.get("agreement") is not None else "-")
    print_wide(table, 200)
    method = report.method
    lines = ["* on the Pareto front: no other variant is as accurate and faster beyond noise, or more accurate and "
             "not slower beyond noise"]
    if method:
        lines += [f"latency: {method['latency']}", f"accuracy: {method['accuracy']}", f"memory: {method['memory']}; "
                  "cold start = session creation + first batch-1 inference, in that process"]
        if method.get("int8_calibration"):
            lines.append(f"int8 calibration: {method['int8_calibration']}")
    for line in lines:
        out.print(escape(line), soft_wrap=True)
    if report.recommendation:
        out.print(f"[bold]recommended:[/] {escape(report.recommendation)}", soft_wrap=True)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)


def bench_cmd(
    models: list[Path] = typer.Argument(..., help="Run directories (every variant in them) or model files."),
    provider: str = typer.Option("cpu", "--provider", help=PROVIDER_HELP),
    runtimes: str = typer.Option("onnxruntime", "--runtimes",
                                 help="Engines for the ONNX files, comma-separated: every file gets a row on each "
                                      "(onnxruntime, openvino), e.g. --runtimes onnxruntime,openvino."),
    batch_sizes: str = typer.Option("1,8,64", "--batch-sizes", help="Batch sizes for throughput."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls before each measurement."),
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
    threads: int = typer.Option(None, "--threads", help="Intra-op threads [default: the runtime's]."),
    max_drop: float = typer.Option(1.0, "--max-accuracy-drop",
                                   help="Recommend the fastest variant within this many points of fp32."),
    allow_fallback: bool = typer.Option(False, "--allow-fallback",
                                        help="Accept ONNX Runtime running on another provider than asked."),
    graph_opt: str = typer.Option("all", "--graph-optimization", help="disable | basic | extended | all."),
    cudnn: str = typer.Option("exhaustive", "--cudnn-algo-search", help="CUDA: exhaustive | heuristic | default."),
    trt_fp16: bool = typer.Option(False, "--trt-fp16", help="TensorRT: allow fp16 kernels."),
    trt_cache: Path = typer.Option(None, "--trt-cache", help="TensorRT: keep built engines in this folder."),
    data: str = typer.Option(None, "--data", help="Data set [default: the one the model was trained on]."),
    data_root: Path = typer.Option(None, "--data-root", help="Where torchvision data sets live."),
    json_file: Path = typer.Option(None, "--json", help="Write the report as JSON [default: RUN_DIR/bench.json]."),
    trust: bool = typer.Option(False, "--trust-torchscript", help=TRUST_HELP),
    keep_going: bool = typer.Option(False, "--keep-going", help=KEEP_GOING_HELP),
    stream: bool = typer.Option(None, "--stream/--no-stream", help=STREAM_HELP),
) -> None:
    """Benchmark every variant of a model: batch-1 latency percentiles with 95% intervals from interleaved
    rounds, throughput per batch size, memory and cold start from a fresh process per variant, and the metrics
    suite on the same test images (accuracy intervals, McNemar's test against fp32), with the provider that
    really ran. A variant is called faster only beyond noise.

    Example: edgecv bench runs/lenet5-digits --provider cpu --batch-sizes 1,8,64
    """

    def body() -> None:
        from edgecv.measure.bench import BenchOptions, bench

        try:
            sizes = tuple(int(b) for b in batch_sizes.split(","))
        except ValueError:
            raise EdgecvError(f"--batch-sizes takes comma-separated whole numbers, got {batch_sizes!r}") from None
        opts = BenchOptions(batch_sizes=sizes, warmup=warmup, iters=iters, seconds=seconds, rounds=rounds,
                            max_accuracy_drop=max_drop, min_speedup=min_speedup, isolate=isolate)
        options = _runtime_options(provider, threads, allow_fallback, graph_opt, cudnn, trt_fp16, trt_cache, trust)
        with StatusLine("benchmarking") as status:
            report = bench(models, options, opts, data=data, data_root=str(data_root) if data_root else None,
                           progress=status.update, keep_going=keep_going, stream=stream,
                           runtimes=tuple(r.strip() for r in runtimes.split(",") if r.strip()))
        print_bench(report)
        target = json_file or (RunDir(models[0]).bench if len(models) == 1 and models[0].is_dir() else None)
        if target is not None:
            _write_report(target, report.to_dict())

    run_guarded(body)
