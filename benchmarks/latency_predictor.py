"""How well a device profile predicts the ONNX Runtime latency of networks it never saw.

Makes a profile on this machine with ``edgeevo profile-device`` (timed: ``profile_seconds``),
then exports and times ``--networks`` random networks of the same space that are not among the
profile's calibration networks, with the profile's runtime settings, and compares each measured
median with the profile's prediction. Prints the error of the profile's predictor and, for
comparison, of each model fitted on the same calibration networks; the last line is JSON with
``mape``, ``within_5``, ``within_10``, ``worst`` (percent), ``networks``, ``profile_seconds`` and
``drift`` (how many times as long some calibration networks take now as in the profile).

    python benchmarks/latency_predictor.py                       # the full run, default space
    python benchmarks/latency_predictor.py --config examples/quickstart.toml \\
        --networks 20 --calibration 15 --op-repeats 20 --repeats 10   # a small run

Latencies are medians of timed runs at batch 1, in ms. On a busy machine the timings spread
widely, and the error measured here is then as much the machine's noise as the predictor's.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Networks timed per batch of sessions, so that memory stays bounded.
CHUNK = 50

# Calibration networks timed again beside the unseen ones, to see whether the machine drifted.
DRIFT_NETWORKS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="search config (default: the default space)")
    parser.add_argument("--networks", type=int, default=200, help="unseen networks to time")
    parser.add_argument("--calibration", type=int, default=90, help="profile's calibration nets")
    parser.add_argument("--op-repeats", type=int, default=200, help="timed runs per op graph")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per network")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved passes per timing")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--seed", type=int, default=1, help="seed of the unseen networks")
    parser.add_argument("--profile", type=Path, help="where to write the profile (default: temp)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    with tempfile.TemporaryDirectory() as scratch:
        out = args.profile or Path(scratch) / "benchmark.json"
        profile_seconds = make_profile(args, out)
        report(args, out, profile_seconds)


def make_profile(args: argparse.Namespace, out: Path) -> float:
    command = [sys.executable, "-m", "edgeevo.cli", "profile-device", "--out", str(out)]
    if args.config is not None:
        command += ["--config", str(args.config)]
    command += [
        *("--calibration", str(args.calibration), "--op-repeats", str(args.op_repeats)),
        *("--repeats", str(args.repeats), "--rounds", str(args.rounds)),
        *("--threads", str(args.threads)),
    ]
    print("$", " ".join(command[1:]), flush=True)
    start = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - start


def report(args: argparse.Namespace, path: Path, profile_seconds: float) -> None:
    import torch

    from edgeevo.config import Config, load_config
    from edgeevo.hardware.latency import SPREAD_WARNING, measure_many
    from edgeevo.hardware.onnx_export import export_onnx
    from edgeevo.hardware.predictor import MODELS, PredictionError, network_ops
    from edgeevo.hardware.profile import SpaceDescription, load_profile
    from edgeevo.hardware.profiling import fit_and_test
    from edgeevo.nets import create_network
    from edgeevo.space import NasnetSpace

    torch.set_num_threads(1)
    config = load_config(args.config) if args.config is not None else Config()
    space = SpaceDescription.from_config(config)
    profile = load_profile(path, space)
    predictor = profile.latency_predictor()

    # Networks the profile never saw: another seed, and none of its calibration networks.
    seen = {timing.genotype.key() for timing in profile.calibration}
    sampler = NasnetSpace(blocks=space.blocks, ops=space.ops)
    rng = random.Random(args.seed)
    genotypes = {}
    while len(genotypes) < args.networks:
        genotype = sampler.sample(rng)
        if genotype.key() not in seen:
            genotypes.setdefault(genotype.key(), genotype)
    genotypes_list = list(genotypes.values())

    # A few calibration networks are timed again among the first unseen ones: if the machine's
    # speed changed since the profile was made, their ratio shows it.
    again = [timing for timing in profile.calibration if timing.held_out][:DRIFT_NETWORKS]
    queue = [timing.genotype for timing in again] + genotypes_list

    print(f"timing {len(genotypes_list)} unseen networks", flush=True)
    graphs = []
    for first in range(0, len(queue), CHUNK):
        graphs += [
            export_onnx(
                create_network(g, cells=space.cells, filters=space.filters, classes=space.classes),
                space.resolution,
            )
            for g in queue[first : first + CHUNK]
        ]
        print(f"  exported {len(graphs)}/{len(queue)}", flush=True)

    def time_all(graphs: list[bytes]) -> list:
        return measure_many(
            graphs,
            profile.runtime,
            warmup=profile.measurement.warmup,
            repeats=args.repeats,
            rounds=args.rounds,
        )

    stats = time_all(graphs)
    measured = [s.median_ms for s in stats]
    spreads = [s.spread for s in stats]
    drift = statistics.median(
        now / timing.median_ms for now, timing in zip(measured, again, strict=False)
    )
    measured, spreads = measured[len(again) :], spreads[len(again) :]
    # The machine's own repeatability: the same graphs timed once more, right away. No predictor
    # can be more exact than the timings it is judged by; the second figure leaves out a change
    # of speed common to all networks between the two passes.
    again_ms = [s.median_ms for s in time_all(graphs[len(again) :])]
    repeat = PredictionError.of(again_ms, measured)
    common = statistics.median(m / a for m, a in zip(measured, again_ms, strict=True))
    repeat_steady = PredictionError.of([common * a for a in again_ms], measured)

    ops = [network_ops(g, space.shape) for g in genotypes_list]
    error = PredictionError.of([predictor.predict_ops(o) for o in ops], measured)

    print(
        f"profile: {path} made in {profile_seconds:.0f} s ({len(profile.ops)} op instances, "
        f"{len(profile.calibration)} calibration networks)"
    )
    print(f"predictor: {profile.predictor['model']}; held out in the profile: {profile.error}")
    print(f"cross-validated MAPE by model: {profile.cross_validation}")
    timings = {t.key: t.op_ms for t in profile.ops}
    for model in MODELS:
        fitted, _, _ = fit_and_test(
            timings, profile.overhead_ms, profile.calibration, space.shape, model
        )
        other = PredictionError.of([fitted.predict_ops(o) for o in ops], measured)
        print(f"  {model:<9} on the unseen networks: {other}")
    wide = sum(spread > SPREAD_WARNING for spread in spreads)
    print(
        f"measured: {min(measured):.3f} to {max(measured):.3f} ms; {wide} of {len(measured)} "
        f"timings spread more than {100 * SPREAD_WARNING:.0f}% (p10 to p90 around the median)"
    )
    print(
        f"drift: {len(again)} calibration networks now run {drift:.3f} times as long as when "
        "the profile was made (1 on a steady machine)"
    )
    print(f"the same unseen networks timed again: {repeat}")
    print(f"  the same, without the common change of speed ({common:.3f}): {repeat_steady}")
    corrected = PredictionError.of([drift * predictor.predict_ops(o) for o in ops], measured)
    print(f"unseen networks, predictions times the drift: {corrected}")
    print(f"unseen networks: {error}")
    print(
        json.dumps(
            {
                "mape": round(error.mape, 3),
                "within_5": round(error.within_5, 2),
                "within_10": round(error.within_10, 2),
                "worst": round(error.worst, 2),
                "networks": error.networks,
                "profile_seconds": round(profile_seconds, 1),
                "drift": round(drift, 3),
                "mape_drift_corrected": round(corrected.mape, 3),
                "repeat_mape": round(repeat.mape, 3),
                "repeat_mape_steady": round(repeat_steady.mape, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
