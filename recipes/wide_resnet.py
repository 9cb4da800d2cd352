"""Wide ResNet (Zagoruyko & Komodakis 2016): width against depth. WRN-d-k over depths
d = 6n+4 and widening factors k, with an optional parameter budget that skips
configurations over it, so equal-cost shallow-wide and deep-thin nets meet."""
from .base import RecipeHyperModel

DEPTHS = [10, 16, 22, 28, 40]
WIDTHS = [1, 2, 4, 8, 10]


class HyperModel(RecipeHyperModel):
    max_trials = 6
    budget_params = 1_500_000

    def space(self, hp):
        depth = hp.Choice("depth", DEPTHS)
        width = hp.Choice("width", WIDTHS)
        return f"wrn_{depth}_{width}", {}, {}

    @staticmethod
    def label(values):
        return f"WRN-{values['depth']}-{values['width']}"
