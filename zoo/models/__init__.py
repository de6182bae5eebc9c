"""The model families; importing this package registers them."""

from zoo.models.base import Autoencoder
from zoo.models.basic import BasicAutoencoder
from zoo.models.cvae import ConditionalVariationalAutoencoder
from zoo.models.denoising import DenoisingAutoencoder
from zoo.models.sparse import SparseAutoencoder
from zoo.models.stacked import StackedAutoencoder
from zoo.models.vae import VariationalAutoencoder
from zoo.models.vqvae import VQVAE

__all__ = [
    "Autoencoder",
    "BasicAutoencoder",
    "ConditionalVariationalAutoencoder",
    "DenoisingAutoencoder",
    "SparseAutoencoder",
    "StackedAutoencoder",
    "VariationalAutoencoder",
    "VQVAE",
]
