"""The dataset catalog: the built-in datasets, their shapes and split sizes (no TensorFlow).

Checking a recipe needs only these facts; loading the arrays is `zoo.data.sources`.
"""

DATASETS = ("fashion_mnist", "mnist", "cifar10")
BINARIZATIONS = ("none", "static", "dynamic")
SOURCES = ("auto", "idx", "tfds")
PRETTY = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}
SHAPES = {"fashion_mnist": (28, 28, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000, "cifar10": 50_000}
TEST_SIZES = {"fashion_mnist": 10_000, "mnist": 10_000, "cifar10": 10_000}
