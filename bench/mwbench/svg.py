"""A hand-written SVG line plot (no plotting library)."""

import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
          "#8c564b", "#17becf", "#e377c2"]


class _Frame:
    """Plot geometry: log10 x axis, linear y axis."""
    W, H, L, R, T, B = 720, 420, 70, 190, 40, 60

    def __init__(self, pts, targets):
        xs = [math.log10(p[0]) for p in pts]
        ys = [p[1] for p in pts] + list(targets.values()) + [1.0]
        self.x0, self.x1 = math.floor(min(xs)), math.ceil(max(xs))
        if self.x1 == self.x0:
            self.x1 = self.x0 + 1
        self.y0 = min(0.8, math.floor(min(ys) * 20) / 20)
        self.y1 = max(1.1, math.ceil(max(ys) * 20) / 20)

    def X(self, x):
        return self.L + (math.log10(x) - self.x0) / (self.x1 - self.x0) * \
            (self.W - self.L - self.R)

    def Y(self, y):
        return self.T + (self.y1 - y) / (self.y1 - self.y0) * \
            (self.H - self.T - self.B)


def _axes(f, o, title, xlabel, ylabel):
    W, H, L, R, T, B = f.W, f.H, f.L, f.R, f.T, f.B
    o += ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
          'font-family="sans-serif" font-size="12">' % (W, H),
          '<rect width="100%" height="100%" fill="white"/>',
          '<text x="%d" y="22" font-size="14">%s</text>' % (L, _esc(title))]
    step = 0.05 if (f.y1 - f.y0) <= 0.5 else 0.1
    y = f.y0
    n = 0
    while y <= f.y1 + 1e-9 and n < 100:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                 % (L, f.Y(y), W - R, f.Y(y)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>'
                 % (L - 6, f.Y(y) + 4, y))
        y += step
        n += 1
    for e in range(f.x0, f.x1 + 1):
        xv = 10 ** e
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                 % (f.X(xv), T, f.X(xv), H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                 % (f.X(xv), H - B + 18, "{:,}".format(xv)))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
             'stroke="#333"/>' % (L, T, W - L - R, H - T - B))
    o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
             % ((L + W - R) / 2, H - 18, _esc(xlabel)))
    o.append('<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" '
             'text-anchor="middle">%s</text>'
             % ((T + H - B) / 2, (T + H - B) / 2, _esc(ylabel)))


def _series(f, o, series, targets):
    W, H, L, R, T, B = f.W, f.H, f.L, f.R, f.T, f.B
    for label, yv in sorted(targets.items()):
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" '
                 'stroke-dasharray="6,4"/>' % (L, f.Y(yv), W - R, f.Y(yv)))
        o.append('<text x="%d" y="%.1f" fill="#666">%s</text>'
                 % (W - R + 4, f.Y(yv) + 4, _esc(label)))
    # legend in the right margin, below the target labels
    ly = max(T + (H - T - B) // 2, max([f.Y(v) for v in targets.values()] +
                                        [T]) + 10) - 40
    for i, (name, s) in enumerate(series.items()):
        col = COLORS[i % len(COLORS)]
        s = [p for p in s if p[1] is not None]
        if not s:
            continue
        d = " ".join("%s%.1f,%.1f" % ("M" if j == 0 else "L", f.X(x), f.Y(y))
                     for j, (x, y) in enumerate(s))
        o.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"/>'
                 % (d, col))
        for x, y in s:
            o.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s">'
                     '<title>%s: %s messages, ratio %.3f</title></circle>'
                     % (f.X(x), f.Y(y), col, _esc(name), x, y))
        ly += 18
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                 'stroke-width="2"/>' % (W - R + 8, ly + 40, W - R + 28,
                                          ly + 40, col))
        o.append('<text x="%d" y="%d">%s</text>' % (W - R + 32, ly + 44,
                                                    _esc(name)))


def svg_plot(series, targets, title, xlabel, ylabel, path):
    """series: {name: [(x, y), ...]} with x > 0 (log axis); targets:
    {label: y}. Writes a small standalone SVG; False when there is
    nothing to plot."""
    pts = [p for s in series.values() for p in s if p[1] is not None]
    if not pts:
        return False
    f = _Frame(pts, targets)
    o = []
    _axes(f, o, title, xlabel, ylabel)
    _series(f, o, series, targets)
    o.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(o) + "\n")
    return True


def _esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))
