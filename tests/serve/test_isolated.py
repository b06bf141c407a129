"""Untrusted models in a child process: a crash, a runaway allocation or a hang ends the child, never the
app, and comes back as one typed error; `edgecv check` says whether a file is safe to load."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import onnx
import pytest
from conftest import assert_user_error, invoke, run_cli
from onnx import TensorProto, helper, numpy_helper

from edgecv import Predictor
from edgecv.core.errors import InvalidImageError
from edgecv.core.facts import Stated
from edgecv.data import load_dataset
from edgecv.serve.isolated import IsolatedPredictor, RuntimeFault, check_model

# the hostile files are not probed at load (their outputs stated as logits): their faults come at the call
FOREIGN = {"labels": [str(i) for i in range(10)], "mean": [0.5], "std": [0.25], "input_shape": (1, 8, 8),
           "facts": Stated(outputs="logits")}


@pytest.fixture(scope="module")
def model(lenet_onnx):
    return lenet_onnx


def _hostile(path, extra_nodes, extra_inits, extra_output):
    """An 8x8 -> 10 class linear model whose logits also add 0 x (a scalar from ``extra_nodes``)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32), "W")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["lin"]),
             *extra_nodes, helper.make_node("Mul", [extra_output, "zero"], ["nothing"]),
             helper.make_node("Add", ["lin", "nothing"], ["logits"])]
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                               ["batch", 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                              [w, zero, *extra_inits])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def memory_hog(tmp_path_factory):
    """Asks for a 40,000 x 40,000 float tensor (6.4 GB) on every run."""
    shape = numpy_helper.from_array(np.array([40_000, 40_000], np.int64), "shape")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    nodes = [helper.make_node("Expand", ["one", "shape"], ["huge"]),
             helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0)]
    return _hostile(tmp_path_factory.mktemp("hog") / "hog.onnx", nodes, [shape, one], "total")


@pytest.fixture(scope="module")
def hang(tmp_path_factory):
    """A Loop of max(input, 0) x 10^15 trips around an Add: a blank image (normalised to -2) answers at once, a
    white one (normalised to +2) never ends in any useful time."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "step"],
                                                                                    ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "step")])
    inits = [numpy_helper.from_array(np.array(1e15, np.float32), "per_unit"),
             numpy_helper.from_array(np.array(True), "go"), numpy_helper.from_array(np.array(0.0, np.float32), "a0")]
    nodes = [helper.make_node("ReduceMax", ["input"], ["brightest"], keepdims=0),
             helper.make_node("Relu", ["brightest"], ["positive"]),
             helper.make_node("Mul", ["positive", "per_unit"], ["trips_f"]),
             helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
             helper.make_node("Loop", ["trips", "go", "a0"], ["spun"], body=body)]
    return _hostile(tmp_path_factory.mktemp("hang") / "hang.onnx", nodes, inits, "spun")


BLANK = np.zeros((8, 8), np.uint8)


WHITE = np.full((8, 8), 255, np.uint8)


@pytest.fixture
def slow_start(tmp_path, monkeypatch):
    """Every Python process started from this test sleeps 4 s before it runs anything: a slow board's start-up,
    made on purpose (a sitecustomize module the interpreter imports at start)."""
    (tmp_path / "sitecustomize.py").write_text("import time\ntime.sleep(4)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    return 4


@pytest.fixture
def watchdog():
    """A generous outer bound: a limit that failed to stop its child fails the test instead of hanging it."""
    def expired(*_):
        raise AssertionError("the test ran past its 300 s watchdog: a time limit did not stop its child")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_isolated_predictions_equal_in_process_ones_and_bad_images_stay_typed(model):
    images = list(load_dataset("digits", 8).test.x[:20, 0])
    local = Predictor(model)
    with IsolatedPredictor(model) as isolated:
        assert [isolated.predict(img) for img in images] == [local.predict(img) for img in images]
        assert isolated.predict_batch(images) == local.predict_batch(images)
        with pytest.raises(InvalidImageError, match="not an image"):
            isolated.predict(b"not an image")
        assert isolated.predict(images[0]) == local.predict(images[0])  # the child survived the bad image
        assert isolated.labels == local.labels


def test_a_crashed_runtime_raises_a_typed_error_and_the_next_call_starts_a_new_one(model):
    image = load_dataset("digits", 8).test.x[0, 0]
    with IsolatedPredictor(model) as isolated:
        expected = isolated.predict(image)
        first = isolated.pid
        os.kill(first, signal.SIGSEGV)  # what a crash in native code looks like from outside
        deadline = time.monotonic() + 120  # a poll, not a bound: it ends as soon as the child is gone
        while time.monotonic() < deadline and isolated._child.process.poll() is None:
            time.sleep(0.01)
        assert isolated._child.process.returncode == -signal.SIGSEGV
        assert isolated.predict(image) == expected and isolated.restarts == 1 and isolated.pid != first


def test_a_model_asking_for_gigabytes_fails_in_its_child_alone(model, memory_hog):
    image = np.zeros((8, 8), np.uint8)
    with IsolatedPredictor(memory_hog, memory_mb=1024, **FOREIGN) as isolated:
        with pytest.raises(RuntimeFault, match="hog.onnx"):
            isolated.predict(image)
    with pytest.raises(RuntimeFault, match="the runtime failed"):
        check_model(memory_hog, memory_mb=1024, **FOREIGN)
    unprobed = {k: v for k, v in FOREIGN.items() if k != "facts"}  # its outputs probed at load, in the child
    with pytest.raises(RuntimeFault, match="hog.onnx"):
        with IsolatedPredictor(memory_hog, memory_mb=1024, **unprobed) as isolated:
            isolated.predict(image)
    assert Predictor(model).predict(image).label  # this process is untouched


def test_a_call_that_never_finishes_is_stopped_at_the_call_limit_and_the_next_call_starts_a_new_child(hang,
                                                                                                         watchdog):
    with IsolatedPredictor(hang, timeout_s=2, **FOREIGN) as isolated:
        answer = isolated.predict(BLANK)
        pid = isolated.pid
        with pytest.raises(RuntimeFault, match="hang.onnx: the call took longer than 2 s; its process was stopped"):
            isolated.predict(WHITE)
        assert isolated.pid is None
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # stopped and reaped
        assert isolated.predict(BLANK) == answer and isolated.restarts == 1 and isolated.pid != pid


def test_a_start_slower_than_the_call_limit_is_bounded_by_the_load_limit_alone(hang, slow_start, watchdog):
    with IsolatedPredictor(hang, timeout_s=2, **FOREIGN) as isolated:  # a 4 s start, well within 120 s
        assert isolated.predict(BLANK).label in FOREIGN["labels"]
    with pytest.raises(RuntimeFault, match="hang.onnx: loading took longer than 1 s; its process was stopped"):
        IsolatedPredictor(hang, timeout_s=60, load_timeout_s=1, **FOREIGN)
    assert check_model(hang, timeout_s=2, **FOREIGN).label in FOREIGN["labels"]
    with pytest.raises(RuntimeFault, match="loading took longer than 1 s"):
        check_model(hang, load_timeout_s=1, **FOREIGN)


def test_check_command_and_function(model, memory_hog, tmp_path):
    result = check_model(model)
    assert result.labels == [str(i) for i in range(10)] and result.label in result.labels
    good = run_cli("check", model, check=True)
    assert "ok" in good.stdout and model.name in good.stdout and "loads within 120 s" in good.stdout
    assert_user_error(invoke("check", tmp_path / "none.onnx"), "does not exist")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07" + b"junk" * 100)
    assert_user_error(invoke("check", tmp_path / "junk.onnx"), "junk.onnx")
    # a foreign file needs its facts; with them, the runaway allocation is caught by the child's cap
    assert_user_error(invoke("check", memory_hog), "no edgecv spec")
    assert_user_error(run_cli("check", memory_hog, "--memory-mb", "1024", "--labels", ",".join(FOREIGN["labels"]),
                              "--mean", "0.5", "--std", "0.25", "--input-shape", "1,8,8"), "hog.onnx",
                      "the runtime failed")


def test_check_command_names_the_limit_a_slow_start_overran(hang, slow_start, watchdog):
    facts = ["--labels", ",".join(FOREIGN["labels"]), "--mean", "0.5", "--std", "0.25", "--input-shape", "1,8,8"]
    assert_user_error(invoke("check", hang, *facts, "--load-timeout", "1"), "hang.onnx",
                      "loading took longer than 1 s")
