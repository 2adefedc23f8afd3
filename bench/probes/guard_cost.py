"""Host cost of the device guard: a QuantLinear's eager call (M = 1, nf4, 4096^2, bf16) on cuda:0 and on cuda:1 with
cuda:0 current (fourbit.ops.eager switches the device for the latter), as a host-bound loop: us a call, best of 5
runs of 200 calls. Usage (a machine with two GPUs, fourbit built): python3 bench/probes/guard_cost.py."""
import time

import torch

import fourbit


@torch.no_grad()  # inference: the eager fast path (with grad on, the module's bias sends calls to the op)
def main():
    lin = torch.nn.Linear(4096, 4096).to(torch.bfloat16)
    torch.cuda.set_device(0)
    for dev in ("cuda:0", "cuda:1"):
        q = fourbit.QuantLinear.from_linear(lin, "nf4").to(dev)
        x = torch.randn(1, 4096, dtype=torch.bfloat16, device=dev)
        for _ in range(50):
            q(x)
        torch.cuda.synchronize(dev)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(200):
                q(x)
            torch.cuda.synchronize(dev)
            best = min(best, (time.perf_counter() - t) / 200 * 1e6)
        print(f"QuantLinear on {dev}, cuda:0 current: {best:.1f} us a call")


if __name__ == "__main__":
    main()
