"""Wide ResNet (Zagoruyko & Komodakis 2016): width against depth at equal cost.

The paper's claim: a shallower, wider net matches or beats a deeper, thinner one of about the
same parameter count (WRN-16-8 vs WRN-40-4, Table 4) and trains several times faster. The
grid's first four points are two such pairs, thin-deep then its wide-shallow match:
WRN-40-1 (0.56 M) vs WRN-16-2 (0.69 M), WRN-28-1 (0.37 M) vs WRN-10-2 (0.30 M); more trials
add larger pairs. ``--budget-params`` skips configurations over it.
"""
from .base import RecipeHyperModel

PAIRS = {"WRN-40-1": (40, 1), "WRN-16-2": (16, 2), "WRN-28-1": (28, 1), "WRN-10-2": (10, 2),
         "WRN-40-2": (40, 2), "WRN-16-4": (16, 4), "WRN-40-4": (40, 4), "WRN-16-8": (16, 8)}


class HyperModel(RecipeHyperModel):
    max_trials = 4
    default_tuner = "grid"
    epochs = 6

    def space(self, hp):
        depth, width = PAIRS[hp.Choice("net", list(PAIRS))]
        return f"wrn_{depth}_{width}", {}, {}

    @staticmethod
    def label(values):
        return values["net"]

    @staticmethod
    def columns(values):
        depth, width = PAIRS[values["net"]]
        return {"depth": depth, "width": width}
