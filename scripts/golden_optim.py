"""Golden values for tests/optim_golden.rs: SGD, momentum, Nesterov, Adam and AdamW
written from their papers' / PyTorch's update rules in numpy (float64), three steps on
a fixed parameter and gradient sequence. Run: python3 scripts/golden_optim.py"""
import numpy as np

p0 = np.array([0.5, -1.0, 2.0, 0.0])
grads = [np.array([0.1, -0.2, 0.3, 0.0]),
         np.array([-0.4, 0.5, 0.05, 1.0]),
         np.array([0.2, 0.2, -0.6, -0.3])]
lr, l2 = 0.1, 0.01

def sgd():
    p = p0.copy()
    for g in grads:
        p -= lr * (g + l2 * p)
    return p

def momentum(nesterov):
    p, buf, mu = p0.copy(), np.zeros(4), 0.9
    for g in grads:
        g = g + l2 * p
        buf = mu * buf + g
        p -= lr * ((g + mu * buf) if nesterov else buf)
    return p

def adam(wd=0.0, l2c=l2):
    p, m, v = p0.copy(), np.zeros(4), np.zeros(4)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t, g in enumerate(grads, 1):
        p *= 1 - lr * wd
        g = g + l2c * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p

for name, p in [("sgd", sgd()), ("momentum", momentum(False)), ("nesterov", momentum(True)),
                ("adam", adam()), ("adamw", adam(wd=0.1, l2c=0.0))]:
    print(name, ", ".join(f"{x:.9f}" for x in p))
