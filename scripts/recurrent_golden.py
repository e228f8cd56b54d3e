"""Golden values for tests/models_cnn_rnn.rs: PyTorch's LSTM and GRU cells, written
out from their documented equations in plain Python (no numpy, no torch), on fixed
weights, so the Rust layers are checked against an independent computation.

Weights: element k of weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 (row-major,
PyTorch's shapes and gate order: LSTM i, f, g, o; GRU r, z, n) is
0.5 * sin(0.37 * k + OFFSET) with OFFSET 0, 1, 2, 3 for the four tensors.
Input: x[b][t][j] = cos(0.5 * (b * T * F + t * F + j)). Prints the last hidden state
of each example, in double precision.

Usage: python3 scripts/recurrent_golden.py"""
import math

T, F, H, B = 5, 3, 4, 2


def tensor(rows, cols, offset):
    return [[0.5 * math.sin(0.37 * (r * cols + c) + offset) for c in range(cols)] for r in range(rows)]


def vector(n, offset):
    return [0.5 * math.sin(0.37 * k + offset) for k in range(n)]


def sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def affine(w, b, v):
    return [sum(wr[j] * v[j] for j in range(len(v))) + b[i] for i, wr in enumerate(w)]


def run(gates, cell):
    w_ih, w_hh = tensor(gates * H, F, 0), tensor(gates * H, H, 1)
    b_ih, b_hh = vector(gates * H, 2), vector(gates * H, 3)
    out = []
    for b in range(B):
        h, c = [0.0] * H, [0.0] * H
        for t in range(T):
            x = [math.cos(0.5 * (b * T * F + t * F + j)) for j in range(F)]
            gx, gh = affine(w_ih, b_ih, x), affine(w_hh, b_hh, h)
            h, c = cell(gx, gh, h, c)
        out.append(h)
    return out


def lstm(gx, gh, h, c):
    a = [gx[k] + gh[k] for k in range(4 * H)]
    i = [sig(v) for v in a[0:H]]
    f = [sig(v) for v in a[H:2 * H]]
    g = [math.tanh(v) for v in a[2 * H:3 * H]]
    o = [sig(v) for v in a[3 * H:]]
    c = [f[u] * c[u] + i[u] * g[u] for u in range(H)]
    return [o[u] * math.tanh(c[u]) for u in range(H)], c


def gru(gx, gh, h, c):
    r = [sig(gx[u] + gh[u]) for u in range(H)]
    z = [sig(gx[H + u] + gh[H + u]) for u in range(H)]
    n = [math.tanh(gx[2 * H + u] + r[u] * gh[2 * H + u]) for u in range(H)]
    return [(1 - z[u]) * n[u] + z[u] * h[u] for u in range(H)], c


for name, gates, cell in (("lstm", 4, lstm), ("gru", 3, gru)):
    for b, h in enumerate(run(gates, cell)):
        print(name, b, " ".join("%.9f" % v for v in h))
