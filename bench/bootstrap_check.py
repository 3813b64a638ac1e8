"""What the alpha = 0 bootstrap check costs: `rank(alpha=0, bootstrap=B)` with each replicate's identification
check against the same call with the check replaced by a no-op, in one process, on all cores.

    python bench/bootstrap_check.py [--rankings 100000] [--bootstrap 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pl_speed import rankings_frame  # the sibling script (bench/ is the script's folder on sys.path)

import aggregators


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rankings", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=40)
    args = parser.parse_args()
    frame, _, _ = rankings_frame(100, args.rankings, 0)
    check = aggregators.undetermined_mask
    seconds = {}
    for label, mask in (("with", check), ("without", lambda o, w: np.zeros(o.n_models, dtype=bool))):
        aggregators.undetermined_mask = mask  # what each replicate's worker calls
        start = time.perf_counter()
        aggregators.rank(frame, method="pl", alpha=0.0, bootstrap=args.bootstrap)
        seconds[label] = time.perf_counter() - start
    aggregators.undetermined_mask = check
    print(
        f"100 models x {args.rankings:,} rankings, alpha 0, {args.bootstrap} replicates: "
        f"{seconds['with']:.1f} s with the check, {seconds['without']:.1f} s without, "
        f"ratio {seconds['with'] / seconds['without']:.2f}x"
    )


if __name__ == "__main__":
    main()
