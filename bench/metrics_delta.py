"""What pgregion's /metrics said between two scrapes, for bench/ryw_bench.sh and
scripts/quickstart.sh (one copy of the parsing and of the histogram quantile).

    import metrics_delta as md
    d = md.Delta("before.txt", "after.txt")
    d.series("pgregion_routed_total")          # {sample key: increase}
    md.label(key, "reason")                    # a label's value in a sample key
    d.quantile("pgregion_ryw_wait_seconds", 0.99)  # seconds, or None without samples
"""
import re


def load(path):
    """Samples of a Prometheus text exposition file: {"name{labels}": value}."""
    out = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or " " not in line:
                continue
            key, value = line.rstrip("\n").rsplit(" ", 1)
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def label(key, name):
    """The value of label NAME in a sample key, or None."""
    m = re.search(name + r'="([^"]*)"', key)
    return m.group(1) if m else None


class Delta:
    """The increase of every sample between two scrapes of the same process."""

    def __init__(self, before_path, after_path):
        self.before = load(before_path)
        self.after = load(after_path)

    def series(self, name):
        """{key: increase} of every sample of metric NAME (with or without labels)."""
        return {k: v - self.before.get(k, 0.0) for k, v in self.after.items()
                if k == name or k.startswith(name + "{")}

    def by_label(self, name, label_name):
        """{label value: increase} of metric NAME, summed over its other labels."""
        out = {}
        for k, v in self.series(name).items():
            value = label(k, label_name)
            out[value] = out.get(value, 0.0) + v
        return out

    def histogram_count(self, name):
        buckets = self._buckets(name)
        return buckets[-1][1] if buckets else 0.0

    def quantile(self, name, q):
        """Histogram quantile interpolated within its buckets, as Prometheus'
        histogram_quantile does; None when the histogram got no sample."""
        buckets = self._buckets(name)
        count = buckets[-1][1] if buckets else 0.0
        if count <= 0:
            return None
        rank, lo, below = q * count, 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                if le == float("inf"):
                    return lo
                return lo + (le - lo) * ((rank - below) / (c - below) if c > below else 1)
            lo, below = le, c
        return lo

    def _buckets(self, name):
        return sorted((float("inf") if label(k, "le") == "+Inf" else float(label(k, "le")), v)
                      for k, v in self.series(name + "_bucket").items())
