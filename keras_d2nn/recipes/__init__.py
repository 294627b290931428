"""Training recipes: the sequences of `compile` and `fit` that make a D2NN
route well, as one call."""

from keras_d2nn.recipes.own_routes import fit_modules_on_routes
from keras_d2nn.recipes.static_first import fit_static_first
from keras_d2nn.recipes.two_phase import fit_controllers
from keras_d2nn.recipes.two_phase import fit_two_phase

__all__ = [
    "fit_controllers",
    "fit_modules_on_routes",
    "fit_static_first",
    "fit_two_phase",
]
