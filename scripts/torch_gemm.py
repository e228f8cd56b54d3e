"""PyTorch's GEMM (MKL on the PyPI wheel) on the deep lab's training-step products,
2 threads, best of 40 steps per round: the same products as
examples/gemm_libraries.rs times for nnlab's `gemm`. Run the two back to back."""
import torch, time
torch.set_num_threads(2)
dims=[(784,512),(512,512),(512,512),(512,512),(512,10)]
L=[(torch.randn(100,i),torch.randn(o,i),torch.randn(100,o)) for i,o in dims]
flop=sum(2*100*i*o*(3 if l>0 else 2) for l,(i,o) in enumerate(dims))
for r in range(6):
    best=1e9
    for _ in range(40):
        t=time.perf_counter()
        for l,(x,w,dy) in enumerate(L):
            y=x@w.t(); dw=dy.t()@x
            if l>0: dx=dy@w
        best=min(best,time.perf_counter()-t)
    print(f"torch deep step products {flop/best/1e9:.0f} GFLOP/s")
print(torch.__config__.show())
