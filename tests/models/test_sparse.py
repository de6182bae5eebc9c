"""The sparse autoencoder's objective against hand computations in numpy."""

import keras
import numpy as np
import pytest
from conftest import tiny_images

import zoo
from zoo.layers import KLSparsity

# A fixed 4×3 matrix of sigmoid activations: 4 examples (rows), 3 code units (columns).
H = np.array([[0.1, 0.9, 0.02],
              [0.3, 0.7, 0.04],
              [0.2, 0.8, 0.06],
              [0.4, 0.6, 0.08]], dtype="float32")


def kl_bernoulli(rho, rho_hat):
    """KL(ρ ‖ ρ̂) between Bernoulli(ρ) and Bernoulli(ρ̂), written out."""
    return rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_penalty_on_a_fixed_activation_matrix():
    rho = 0.1
    # ρ̂_j by hand: column means (0.1+0.3+0.2+0.4)/4 = 0.25, (0.9+0.7+0.8+0.6)/4 = 0.75, 0.05.
    rho_hat = np.array([0.25, 0.75, 0.05])
    omega = sum(kl_bernoulli(rho, r) for r in rho_hat)
    got_omega, got_mean = KLSparsity(rho)(H)
    np.testing.assert_allclose(float(got_omega), omega, rtol=1e-5)
    np.testing.assert_allclose(float(got_mean), rho_hat.mean(), rtol=1e-6)
    # The first unit alone, written as numbers: ρ̂ = 0.25, KL(0.1 ‖ 0.25) = 0.1·log 0.4 + 0.9·log 1.2.
    one_unit, _ = KLSparsity(rho)(H[:, :1])
    np.testing.assert_allclose(float(one_unit), 0.1 * np.log(0.4) + 0.9 * np.log(1.2), rtol=1e-5)


def test_penalty_is_zero_at_the_target_and_positive_elsewhere():
    at_target = np.full((5, 3), 0.1, "float32")
    assert abs(float(KLSparsity(0.1)(at_target)[0])) < 1e-6
    assert float(KLSparsity(0.1)(at_target + 0.2)[0]) > 0.1


def test_saturated_units_give_a_finite_penalty():
    omega, _ = KLSparsity(0.05)(np.array([[0.0, 1.0], [0.0, 1.0]], "float32"))
    assert np.isfinite(float(omega))


@pytest.mark.parametrize("rho", [0.0, 1.0, 1.5, -0.1])
def test_rho_outside_the_open_unit_interval_is_rejected(rho):
    with pytest.raises(ValueError, match=rf"rho must be in \(0.0, 1.0\). Received: rho={rho}"):
        KLSparsity(rho)


def _numpy_objective(model, x, rho, beta, lam):
    """‖x − x̂‖² averaged over the batch + β·Σ_j KL(ρ‖ρ̂_j) + (λ/2)·Σ‖W‖², from the model's weights."""
    w1, b1 = (np.asarray(v, "float64") for v in model.encoder.get_layer("code").weights)
    dense = [layer for layer in model.decoder.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 1  # the classic one-layer model: x → h → x̂
    w2, b2 = (np.asarray(v, "float64") for v in dense[0].weights)
    flat = x.reshape(len(x), -1).astype("float64")
    h = sigmoid(flat @ w1 + b1)
    x_hat = sigmoid(h @ w2 + b2)
    reconstruction = np.mean(np.sum((flat - x_hat) ** 2, axis=1))
    rho_hat = h.mean(axis=0)
    omega = np.sum(kl_bernoulli(rho, rho_hat))
    decay = lam / 2 * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
    return reconstruction + beta * omega + decay, rho_hat


def test_total_loss_is_reconstruction_plus_sparsity_plus_weight_decay():
    rho, beta, lam = 0.1, 3.0, 0.01
    x = tiny_images(16)
    model = zoo.build("sparse", input_shape=x.shape[1:], code_size=12, rho=rho, beta=beta, weight_decay=lam)
    model(x[:1])
    expected, _ = _numpy_objective(model, x, rho, beta, lam)
    loss = float(model.compute_loss(x=x, y_pred=model(x, training=True)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # evaluate() reaches the same number through Keras's test step.
    model.compile(optimizer="sgd")
    evaluated = model.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(evaluated["loss"], expected, rtol=1e-5)
    # β scales the penalty: with β = 0 and λ = 0 only the reconstruction is left.
    plain = zoo.build("sparse", input_shape=x.shape[1:], code_size=12, rho=rho, beta=0.0)
    plain(x[:1])
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(float(plain.compute_loss(x=x, y_pred=plain(x, training=True))),
                               _numpy_objective(model, x, rho, 0.0, 0.0)[0], rtol=1e-5)


def test_mean_activation_is_reported_after_fit():
    rho = 0.1
    x = tiny_images(16)
    model = zoo.build("sparse", input_shape=x.shape[1:], code_size=12, rho=rho, beta=3.0)
    model(x[:1])
    _, rho_hat = _numpy_objective(model, x, rho, 3.0, 0.0)
    # Learning rate 0: the metric of the one step is that of the weights we computed with.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0))
    history = model.fit(x, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["mean_activation"][0], rho_hat.mean(), rtol=1e-5)
    omega = np.sum(kl_bernoulli(rho, rho_hat))
    np.testing.assert_allclose(history["sparsity_penalty"][0], omega, rtol=1e-5)


def test_training_moves_mean_activation_towards_rho():
    rho = 0.05
    x = tiny_images(64)
    model = zoo.build("sparse", input_shape=x.shape[1:], code_size=12, rho=rho, beta=3.0)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    history = model.fit(x, batch_size=64, epochs=12, verbose=0).history
    first, last = history["mean_activation"][0], history["mean_activation"][-1]
    assert abs(last - rho) < abs(first - rho) / 2, (first, last)
