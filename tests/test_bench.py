"""bench/run.py --quick as a smoke test: it runs and produces every row (no timing asserted),
the oneDNN profile parser on real verbose lines, loop_vs_fit --quick and profile_zoo on two
models."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import where_time_goes  # noqa: E402


def quick(script, out, *args, cwd=None):
    """Run ``bench/SCRIPT --quick --out OUT ARGS`` (no ``--out`` when OUT is None) in ``cwd``;
    it must exit 0."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick",
                             *(["--out", str(out)] if out else []), *args], capture_output=True,
                            text=True, env=env, timeout=1200, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_bench_quick_produces_every_row(tmp_path):
    """ResNet-50 only (the other models take the same code path; the model with every row:
    PyTorch's, JAX's, the frozen-weights process, oneDNN's profile)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    quick("run.py", tmp_path, "--models", "resnet50")
    report = json.loads((tmp_path / "results.json").read_text())
    assert set(report["models"]) == {"resnet50"}
    table = (tmp_path / "results.md").read_text()
    for row in ("ours/keras inference b1", "ours/keras training", "folded/fp32", "xla/fp32",
                "saved_model/fp32", "bf16 folded/keras fp32", "bf16 SavedModel/keras fp32",
                "bf16 at peak/keras fp32 (bound)", "achieved/peak fp32 (ours)",
                "achieved/peak bf16 (bf16 folded)", "bf16 folded/torch fp32",
                "bf16 folded/torch bf16", "bf16 folded/torch bf16_jit",
                "bf16 folded/best torch", "ours fp32/jax fp32 b1", "ours fp32/jax fp32 b4",
                "bf16 folded/jax bf16 folded b1", "bf16 folded/jax bf16 folded b4"):
        assert f"| {row} |" in table
    # the JAX rows are timed in the same rounds: their ratio is that of the two times
    r = report["models"]["resnet50"]
    assert r["ratios"]["ours fp32/jax fp32 b4"][0] == pytest.approx(
        r["throughput_img_s"]["ours"] / r["throughput_img_s"]["jax_fp32"], rel=1e-6)
    # the best PyTorch path is the fastest of the three, and the ratio to it is the ratio
    # of our bf16 path to that one (one round: paired ratio = ratio of the two times)
    r = report["models"]["resnet50"]
    best = r["best_torch"]
    assert best in ("torch_fp32", "torch_bf16", "torch_bf16_jit")
    assert r["throughput_img_s"][best] == max(
        v for k, v in r["throughput_img_s"].items() if k.startswith("torch_"))
    assert r["ratios"]["bf16 folded/best torch"][0] == pytest.approx(
        r["throughput_img_s"]["fast_folded"] / r["throughput_img_s"][best], rel=1e-6)
    # every target gets a verdict; the profile accounts for the convolutions
    assert table.count("≥ 1.0 |") == 3 and "| A/A keras copy/keras training |" in table
    assert "frozen-weights process ≥ 2.5" in table
    assert "top-1 agreement on held-out digits ≥ 99%" in table
    # oneDNN's profile: a row for every kind of primitive that ran (convolutions where
    # TensorFlow runs oneDNN's, as on AVX-512 CPUs; on AVX2-only CPUs Eigen's convolutions
    # call oneDNN's GEMM, "gemm_api"), and the convolution work is among them
    kinds = {k for p in report["profile_raw"] for k in p["groups"]}
    assert kinds & {"convolution kxk", "gemm_api"}, kinds
    assert all(f"| {k} |" in table for k in kinds) and "| total (wall) |" in table
    # achieved/peak is the model's multiply-adds at its measured rate over the peak from
    # the same report; no implementation runs far above the machine's peak
    for m, r in report["models"].items():
        for key, path, dt in (("achieved/peak fp32 (ours)", "ours", "fp32"),
                              ("achieved/peak bf16 (bf16 folded)", "fast_folded", "bf16")):
            achieved = 2 * r["gmacs"] * r["throughput_img_s"][path] / report["peak_gflops"][dt]
            assert r["achieved_over_peak"][key] == pytest.approx(achieved, rel=1e-6), (m, key)
            assert 0.001 < achieved < 2, (m, key, achieved)
    assert not list(tmp_path.glob("*.tmp"))
    # the report is a function of the JSON: --render writes the same tables again
    again = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--render",
                            str(tmp_path / "results.json"), "--out", str(tmp_path / "again")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "results.md").read_text() == table


def test_verdicts_judge_misses_against_the_control():
    import run

    control = (1.0, 0.99, 1.01)  # two identical models
    assert run.verdict((1.0, 0.98, 1.02), 1.0, control) == "met"
    assert run.verdict((0.98, 0.97, 1.01), 1.0, control).startswith("within noise (2.0% below")
    assert run.verdict((0.95, 0.94, 0.96), 1.0, control) == "**missed by 5.0%**"
    assert run.verdict((2.3, 2.2, 2.45), 2.5) == "**missed by 8.0%**"  # no control: strict
    assert run.verdict(0.995, 0.99) == "met" and run.verdict(0.98, 0.99).startswith("**missed")
    assert abs(run.noise_band((0.98, 0.93, 1.01)) - 0.07) < 1e-9


def test_profile_parser_on_onednn_verbose_lines():
    out = "\n".join([
        "onednn_verbose,v1,primitive,create:cache_miss,cpu,convolution,x,forward,src,,,"
        "mb1_ic3oc8_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,0.5",  # before the mark: ignored
        "@@start 0",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src dst,,,64x3x7x7,0.25",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,"
        "forward_training,src wei,attr-post-ops:eltwise_relu,alg:convolution_direct,"
        "mb32_ic3oc64_ih224oh112kh7sh2dh0ph3_iw224ow112kw7sw2dw0pw3,9.5",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_1x1:avx512_core_bf16,"
        "forward_training,src wei,attr-post-ops:sum+eltwise_relu,alg:convolution_direct,"
        "g2mb4_ic64oc256_ih56oh56kh1sh1dh0ph0_iw56ow56kw1sw1dw0pw0,2.0",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_bwd_w:avx512_core_amx,"
        "backward_weights,src wei,,alg:convolution_direct,"
        "mb32_ic64oc64_ih56oh56kh3sh1dh1ph1_iw56ow56kw3sw1dw1pw1,4.0",
        "@@end 0 0.0150",
    ])
    (wall, prims), = where_time_goes.parse(out).values()
    assert wall == 0.015
    assert prims == [("reorder", 0.25, None),
                     ("convolution kxk", 9.5, 2 * 32 * 64 * 112 * 112 * 3 * 7 * 7),
                     ("convolution 1x1 +residual add", 2.0, 2 * 4 * 256 * 56 * 56 * 32),
                     ("convolution kxk backward-weights", 4.0,
                      2 * 32 * 64 * 56 * 56 * 64 * 3 * 3)]


def test_profile_zoo_times_shapes_only_and_full_builds():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "profile_zoo.py"), "--models",
                             "resnet18", "googlenet"], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    m = re.search(r"2 models: build ([\d.]+) s \(shapes only; full build ([\d.]+) s, "
                  r"([\d.]+)x\) \+ profile ([\d.]+) s = ([\d.]+) s", result.stdout)
    assert m, result.stdout
    shapes, full, ratio, walk, total = map(float, m.groups())
    assert all(math.isfinite(v) and v > 0 for v in (shapes, full, ratio, total))
    # walk: two small graphs, "0.0" at 0.1 s resolution; checked through the total below
    # the ratio of the unrounded times, within what the two printed to 0.1 s allow
    assert (full - 0.05) / (shapes + 0.05) - 0.01 <= ratio <= (full + 0.05) / max(
        shapes - 0.05, 1e-9) + 0.01
    assert total == pytest.approx(shapes + walk, abs=0.15)


@pytest.mark.slow
def test_loop_vs_fit_quick_reports_consistent_figures(tmp_path):
    """Also: a quick run without --out writes to runs/bench-quick, never over the committed
    bench/results, and its table is headed by command, machine and date."""
    quick("loop_vs_fit.py", None, cwd=tmp_path)
    assert not (tmp_path / "bench").exists()
    tmp_path = tmp_path / "runs" / "bench-quick"
    report = json.loads((tmp_path / "loop_vs_fit.json").read_text())
    assert report["run"]["command"].endswith("bench/loop_vs_fit.py --quick")
    assert (tmp_path / "loop_vs_fit.md").read_text().startswith(
        f"`{report['run']['command']}` on {report['run']['machine']['cpu']}, ")
    rows = {r["loop"]: r for r in report["rows"]}
    assert set(rows) == {"model.fit", "ours, 1 steps per call", "ours, 10 steps per call"}
    assert report["settings"]["images_per_round"] == 10 * 64  # --quick: 10 steps of 64
    fit = rows["model.fit"]["images_per_second"]
    for r in rows.values():  # one round: the paired ratio is the ratio of the two speeds
        assert math.isfinite(r["images_per_second"]) and r["images_per_second"] > 0
        assert r["ratio_to_fit"] == pytest.approx(r["images_per_second"] / fit, rel=1e-9)
    assert "| ours, 10 steps per call |" in (tmp_path / "loop_vs_fit.md").read_text()


def test_train_vs_torch_quick_times_the_same_nets(tmp_path):
    """The training benchmark's smoke test: every step of both models runs, and PyTorch's
    nets are ours (the same parameter count: torchvision's ResNet-50, the ZFNet written to
    our layer table); one round, so each paired ratio is the ratio of the two speeds."""
    quick("train_vs_torch.py", tmp_path)
    report = json.loads((tmp_path / "train_vs_torch.json").read_text())
    assert report["run"]["command"].endswith(f"bench/train_vs_torch.py --quick --out {tmp_path}")
    import keras

    import keras_classics as kc

    biases = sum(int(np.prod(l.bias.shape)) for l in kc.get_model("resnet50").layers
                 if isinstance(l, keras.layers.Conv2D) and l.use_bias)
    for name in ("resnet50", "zfnet"):
        counts = report["params"][name]
        assert counts["torch fp32"] == counts["torch bf16 autocast"], counts
        # trainable parameters; Keras' ResNet-50 (ours) has conv biases before its BNs,
        # torchvision's has none
        assert counts["ours"] - counts["torch fp32"] == (biases if name == "resnet50" else 0)
        rows = {r["step"]: r for r in report["rows"] if r["model"] == name}
        assert set(rows) == {"ours fp32", "ours fp32 keras BN", "ours mixed_bf16",
                             "ours mixed_bf16 keras BN", "ours mixed_bf16 jit",
                             "torch fp32", "torch bf16 autocast"}
        ref = rows["torch bf16 autocast"]["images_per_second"]
        for r in rows.values():
            assert math.isfinite(r["images_per_second"]) and r["images_per_second"] > 0
            assert r["ratio"] == pytest.approx(r["images_per_second"] / ref, rel=1e-9)
    text = (tmp_path / "train_vs_torch.md").read_text()
    assert text.startswith(f"`{report['run']['command']}` on ")
    assert "| zfnet | ours mixed_bf16 jit |" in text


def test_frozen_serving_quick_runs_both_servers(tmp_path):
    """Two server processes, one with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1 (as the server
    itself reports it), each SavedModel at batch 1 and 4; the ratio is the paired one."""
    quick("frozen_serving.py", tmp_path)
    report = json.loads((tmp_path / "frozen_serving.json").read_text())
    assert report["settings"]["TF_ONEDNN_ASSUME_FROZEN_WEIGHTS in the servers"] == {
        "default": "0", "frozen": "1"}
    rows = {(r["model"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(m, b) for m in ("fp32", "bf16") for b in (1, 4)}
    for r in rows.values():  # one round: the ratio of the two medians
        assert math.isfinite(r["frozen_ms"]) and r["frozen_ms"] > 0
        assert r["ratio"] == pytest.approx(r["default_ms"] / r["frozen_ms"], rel=1e-9)
    assert (tmp_path / "frozen_serving.md").read_text().startswith(
        f"`{report['run']['command']}` on ")


def test_where_time_goes_splits_a_training_step_s_convolutions(tmp_path):
    """A training step profiled through oneDNN's verbose log: forward, backward-data and
    backward-weights convolutions, the rest of the wall time outside oneDNN; --render prints it
    again. In bfloat16 where TensorFlow hands bfloat16 convolutions to oneDNN (AVX-512: the
    AMX/AVX512-BF16 kernels or their emulation); on an AVX2-only CPU it does not (Eigen runs
    them), so the step is float32 there."""
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split())
    variant = "train_mixed_bf16" if "avx512f" in flags else "train_fp32"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "where_time_goes.py"),
                             "--model", "wrn_10_1", "--variants", variant,
                             "--size", "16", "--batch", "4", "--no-peak", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "where_time_goes.json").read_text())
    (prof,) = report["profiles"]
    kinds = set(prof["groups"])
    for part in ("convolution kxk", "convolution kxk backward-data",
                 "convolution kxk backward-weights"):
        assert part in kinds, kinds
    inside = sum(g["ms"] for g in prof["groups"].values())
    assert 0 < inside <= prof["wall_ms"] and math.isfinite(prof["outside_ms"])
    rendered = subprocess.run([sys.executable, str(ROOT / "bench" / "where_time_goes.py"),
                               "--render", str(tmp_path / "where_time_goes.json")],
                              capture_output=True, text=True, timeout=300)
    assert rendered.stdout.strip() == (tmp_path / "where_time_goes.md").read_text().strip()


def test_op_time_is_shared_among_the_ops_running_together():
    """Two ops overlapping for 2 of their 4 and 6 ps share those 2; a third alone keeps its
    own: the shares add up to the busy time (8 + 5 ps), not to the sum of durations."""
    events = [(0, 4, "a"), (2, 8, "b"), (10, 15, "c")]
    shares = where_time_goes.attribute(events)
    assert shares == {"a": 3.0, "b": 5.0, "c": 5.0}
    assert sum(shares.values()) == 8 + 5


def test_ops_are_put_in_their_layer_s_row():
    kinds = {"conv1_bn": "BatchNormalization", "conv1_conv": "Conv2D"}
    row = where_time_goes.op_row
    assert row("gradient_tape/resnet50_1/conv1_bn_1/FusedBatchNormGradV3",
               "FusedBatchNormGradV3", kinds, "resnet50") == ("BatchNormalization", "backward")
    assert row("resnet50_1/conv1_conv_1/convolution", "_FusedConv2D", kinds,
               "resnet50") == ("Conv2D", "forward")
    assert row("sgd/Mul_3", "Mul", kinds, "resnet50") == ("optimizer", "update")
    assert row("AddN_3", "AddN", kinds, "resnet50")[0].startswith("other")


def by_op_report(out, *args):
    """Run ``bench/where_time_goes.py --by-op ARGS --out OUT`` (it must exit 0), check that
    ``--render`` reproduces the written .md; the report and the rendered table."""
    script = str(ROOT / "bench" / "where_time_goes.py")
    result = subprocess.run([sys.executable, script, "--by-op", *args, "--out", str(out)],
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    rendered = subprocess.run([sys.executable, script, "--render",
                               str(out / "where_time_goes_ops.json")],
                              capture_output=True, text=True, timeout=300)
    assert rendered.stdout.strip() == (out / "where_time_goes_ops.md").read_text().strip()
    return json.loads((out / "where_time_goes_ops.json").read_text()), rendered.stdout


def check_busy_time(prof):
    """The rows add up to the busy time, every row finite, the busy time within the profiled
    wall."""
    assert all(math.isfinite(r["ms"]) and r["ms"] >= 0 for r in prof["rows"].values())
    assert math.isclose(prof["busy_ms"], sum(r["ms"] for r in prof["rows"].values()))
    assert 0 < prof["busy_ms"] <= prof["profiled_wall_ms"] * 1.01


def test_where_time_goes_by_op_shows_batch_norm_s_kernels(tmp_path):
    """TensorFlow's profiler on a training step of a batch-norm network: with the fused
    kernel the batch-norm rows are its ops, with Keras' code they are moments' (SquaredDifference
    forward, Tile/Sum/Mul backward); the rows add up to a busy time within the profiled wall."""
    report, rendered = by_op_report(tmp_path, "--model", "wrn_10_1", "--variants",
                                    "train_fp32_keras_bn", "train_fp32", "--size", "16",
                                    "--batch", "4", "--calls", "1")
    keras_bn, fused = report["by_op"]
    for prof in (keras_bn, fused):
        check_busy_time(prof)
        assert {"Conv2D|forward", "Conv2D|backward", "optimizer|update"} <= set(prof["rows"])

    def ops(prof, row):
        return set(prof["rows"][row]["ops"])
    assert "SquaredDifference" in ops(keras_bn, "BatchNormalization|forward")
    assert not any("FusedBatchNorm" in op for op in ops(keras_bn, "BatchNormalization|forward"))
    assert any("FusedBatchNormGrad" in op for op in ops(fused, "BatchNormalization|backward"))
    assert not ops(fused, "BatchNormalization|backward") & {"Tile", "Sum", "SquaredDifference"}
    assert "| BatchNormalization | backward |" in rendered


def test_by_op_puts_our_zfnet_and_pytorch_s_in_the_same_rows(tmp_path):
    """Ours and PyTorch's ZFNet step side by side: the XLA-compiled LRN (an asynchronous op,
    its gradient called outside any name scope) lands in LRN's rows on our side; PyTorch's LRN
    (a chain of aten ops) in the same rows, its backward found through the autograd sequence
    numbers; each side's rows add up to a busy time within its profiled wall."""
    report, rendered = by_op_report(tmp_path, "--model", "zfnet", "--variants", "train_fp32",
                                    "torch_train_fp32", "--size", "64", "--batch", "2",
                                    "--calls", "1")
    ours, theirs = report["by_op"]
    for prof in (ours, theirs):
        check_busy_time(prof)
        assert {f"{kind}|{phase}" for kind in ("Conv2D", "LocalResponseNormalization", "Dense")
                for phase in ("forward", "backward")} | {"optimizer|update"} <= set(prof["rows"])
        assert where_time_goes.UNSCOPED_GRADIENT not in {k.split("|")[0] for k in prof["rows"]}
    assert set(ours["rows"]["LocalResponseNormalization|backward"]["ops"]) == {
        "PartitionedCall"}
    assert "avg_pool3d_backward" in theirs["rows"]["LocalResponseNormalization|backward"]["ops"]
    assert "convolution_backward" in theirs["rows"]["Conv2D|backward"]["ops"]
    assert "torch_train_fp32 ms (share)" in rendered


def test_pytorch_s_resnet_ops_find_their_layers():
    """torchvision's ResNet-50: the residual ``out += identity`` (no module of its own) is the
    Add row, batch norm's backward node is found from its forward op, casts under bf16
    autocast sit with the layer that casts (ToCopyBackward0 among Conv2D's backward ops)."""
    for variant in ("torch_train_fp32", "torch_train_bf16_autocast"):
        prof = where_time_goes.op_profile("resnet50", variant, batch=2, size=32, calls=1)
        rows = prof["rows"]
        assert {"Add|forward", "Add|backward", "BatchNormalization|backward",
                "Activation|backward", "GlobalAveragePooling2D|backward"} <= set(rows)
        assert "native_batch_norm_backward" in rows["BatchNormalization|backward"]["ops"]
        assert rows.get("other layer|forward", {"ms": 0.0})["ms"] < 0.05 * prof["busy_ms"]
    assert "ToCopyBackward0" in rows["Conv2D|backward"]["ops"]


@pytest.mark.parametrize("argv, says", [
    (["--by-op", "--model", "wrn_10_1", "--variants", "torch_train_fp32"],
     "PyTorch twins of resnet50, zfnet only"),
    (["--model", "zfnet", "--variants", "torch_train_fp32"], "profiled with --by-op")])
def test_torch_variants_refuse_what_they_cannot_profile(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        where_time_goes.main(argv)
    assert exit_.value.code == 2 and says in capsys.readouterr().err
