"""SGEMM speed of numpy's BLAS on the lab networks' training-step products (the same
list `nnlab bench` times with the gemm crate), for choosing the GEMM library.
Run: OPENBLAS_NUM_THREADS=2 python3 scripts/sgemm_shapes.py"""
import time
import numpy as np

def step_products(dims, batch):
    out = []
    for i, (inp, o) in enumerate(dims):
        out.append((batch, o, inp))      # y = x W^T
        out.append((o, inp, batch))      # dW = dy^T x
        if i > 0:
            out.append((batch, inp, o))  # dx = dy W
    return out

nets = {"xavier": [(784, 256), (256, 256), (256, 10)],
        "deep": [(784, 512), (512, 512), (512, 512), (512, 512), (512, 10)]}
for name, dims in nets.items():
    prods = step_products(dims, 100)
    mats = [(np.random.rand(m, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)) for m, n, k in prods]
    flop = sum(2 * m * n * k for m, n, k in prods)
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(20):
            for a, b in mats:
                a @ b
        best = min(best, (time.perf_counter() - t) / 20)
    print(f"{name}: {flop / best / 1e9:.1f} GFLOP/s on the step's products")
n = 2048
a = np.random.rand(n, n).astype(np.float32)
a @ a
best = min((lambda t: (a @ a, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(3))
print(f"2048^3: {2 * n ** 3 / best / 1e9:.1f} GFLOP/s")
