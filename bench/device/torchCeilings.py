# Reference ceilings on the lent GPU through PyTorch: f32 matmul (cuBLAS SGEMM, TF32 off) and a
# device-to-device copy (bytes read + written), timed with CUDA events after warm-up.
import torch

torch.backends.cuda.matmul.allow_tf32 = False


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        fn()
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / reps


for n in (4096, 8192):
    a, b = torch.randn(n, n, device='cuda'), torch.randn(n, n, device='cuda')
    ms = timed(lambda: a @ b, 10)
    print(f'torch_sgemm n={n} {ms:.3f} ms {2 * n**3 / ms / 1e9:.1f} TFLOP/s')
x = torch.randn(2**26, device='cuda')
y = torch.empty_like(x)
ms = timed(lambda: y.copy_(x), 20)
print(f'torch_copy 256MiB {ms:.3f} ms {2 * x.numel() * 4 / ms / 1e6:.0f} GB/s')
