"""The competing pathways (pruning objective, greedy, random, active) and the measures, against
hand-written references on small float64 networks (explicit masked forward loops, no hooks)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import toy_models as toy

from pathlib_core import neuron_contributions, pruning, select_pathway
from pathlib_core.pathway import Pathway, removed_count

pytestmark = pytest.mark.usefixtures("single_thread")


def _setup(batch=3, seed=1):
    model = toy.small_cnn(seed=seed)
    torch.manual_seed(seed + 10)
    return model, torch.randn(batch, 1, 8, 8, dtype=torch.float64)


def _masks(pathway):
    return list(pathway.masks.values())


def _hand_acts(model, x, masks=None):
    acts = []
    with torch.no_grad():
        toy.hand_forward(model, x, masks, keep=acts)
    return acts


# ------------------------------------------------------------------ the pruning objective


def _hand_cdrp(model, x, sparsity, steps, l1=0.01, lr=0.01):
    """The official cdrp/main.py loop for ONE sample, written out: gates as tensors multiplied
    into the ReLU outputs, torch.optim.SGD, clamp, best prediction-keeping iterate."""
    with torch.no_grad():
        logits = toy.hand_forward(model, x)
    reference = F.softmax(logits, dim=1)
    prediction = logits.argmax(dim=1)
    gates = [torch.ones_like(a).requires_grad_(True) for a in _hand_acts(model, x)]
    optimiser = torch.optim.SGD(gates, lr=lr, momentum=0.9)
    best, best_loss = None, float("inf")
    for _ in range(steps):
        out = toy.hand_forward(model, x, gates)
        loss = -(reference * F.log_softmax(out, dim=1)).sum() + l1 * sum(
            g.abs().sum() for g in gates
        )
        if out.argmax(dim=1).item() == prediction.item() and loss.item() < best_loss:
            best, best_loss = [g.detach().clone() for g in gates], loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            for g in gates:
                g.clamp_(0, 100)
    return toy.reference_masks(best, sparsity)


def test_learned_pathway_matches_the_official_loop_and_is_batch_independent():
    model, x = _setup()
    batched = pruning.learned_pathway(model, x, 0.7, n_steps=40, progress=False)
    assert batched.settings["kept_prediction"].all()
    assert all(p.grad is None for p in model.parameters())
    for i in range(x.shape[0]):
        expected = _hand_cdrp(model, x[i : i + 1], 0.7, steps=40)
        single = pruning.learned_pathway(model, x[i : i + 1], 0.7, n_steps=40, progress=False)
        for got, alone, want in zip(_masks(batched), _masks(single), expected, strict=False):
            assert torch.equal(got[i : i + 1], want)
            assert torch.equal(alone, want)


def test_learned_pathway_uniform_init_is_seeded_and_keeps_the_prediction():
    model, x = _setup()
    a = pruning.learned_pathway(model, x, 0.8, init="uniform", n_steps=30, seed=3, progress=False)
    b = pruning.learned_pathway(model, x, 0.8, init="uniform", n_steps=30, seed=3, progress=False)
    c = pruning.learned_pathway(model, x, 0.8, init="uniform", n_steps=30, seed=4, progress=False)
    assert all(torch.equal(m, n) for m, n in zip(_masks(a), _masks(b), strict=False))
    assert not all(torch.equal(m, n) for m, n in zip(_masks(a), _masks(c), strict=False))
    assert (a.sparsity >= 0.8 - 1e-12).all()
    assert a.settings["init"] == "uniform" and a.settings["l1_final"].shape == (3,)
    # each sample starts from the same draw: its gates do not depend on the batch
    for i in range(3):
        alone = pruning.learned_pathway(
            model, x[i : i + 1], 0.8, init="uniform", n_steps=30, seed=3, progress=False
        )
        assert all(
            torch.equal(m[i : i + 1], n) for m, n in zip(_masks(a), _masks(alone), strict=False)
        )


def test_learned_pathway_retries_with_a_smaller_l1_when_no_iterate_keeps_the_prediction(
    monkeypatch,
):
    model, x = _setup()
    original = pruning._gated_loss
    weights_seen = []

    def first_round_never_keeps(*args):
        loss, kept = original(*args)
        weight = args[-1]
        weights_seen.append(float(weight.max()))
        return loss, kept & (weight < 0.005).to(kept.device)

    monkeypatch.setattr(pruning, "_gated_loss", first_round_never_keeps)
    pathway = pruning.learned_pathway(model, x, 0.5, init="uniform", n_steps=4, progress=False)
    assert pathway.settings["kept_prediction"].all()
    assert torch.allclose(
        pathway.settings["l1_final"], torch.full((3,), 0.001, dtype=torch.float64)
    )
    assert weights_seen == [0.01] * 4 + [0.001] * 4
    # a sample that never keeps the prediction reports the last weight actually used
    monkeypatch.setattr(
        pruning, "_gated_loss", lambda *a: (original(*a)[0], original(*a)[1] & False)
    )
    never = pruning.learned_pathway(
        model, x, 0.5, init="uniform", n_steps=2, max_rounds=3, progress=False
    )
    assert not never.settings["kept_prediction"].any()
    assert torch.allclose(never.settings["l1_final"], torch.full((3,), 1e-4, dtype=torch.float64))
    # init="ones" needs no retry: its first iterate is the whole network
    monkeypatch.setattr(pruning, "_gated_loss", original)
    ones = pruning.learned_pathway(model, x, 0.5, n_steps=4, progress=False)
    assert ones.settings["kept_prediction"].all() and (ones.settings["l1_final"] == 0.01).all()


# ------------------------------------------------------------------------------- greedy


def _hand_greedy_official(model, x, sparsity, step):
    """Pruner._mask_least_important_neurons_iterative, round by round, on the hand-masked net;
    the percentile is the documented k-th smallest (k = ceil(q n))."""
    target = toy.hand_forward(model, x).argmax(dim=1)
    masks = [torch.ones_like(a) for a in _hand_acts(model, x)]
    scores = toy.hand_taylor(model, x, target)
    rounds = round(sparsity / step)
    for j in range(1, rounds + 1):
        q = sparsity if j == rounds else j * step
        flat = torch.cat([s.reshape(1, -1) for s in scores], dim=1)[0]
        lifted = torch.where(flat > 0, flat, flat.max())
        k = removed_count(q, flat.numel())
        threshold = lifted.sort().values[k - 1]
        masks = [~((s > 0) & (s <= threshold)) for s in scores]
        scores = _hand_taylor_masked(model, x, target, masks)
    return masks


def _hand_taylor_masked(model, x, target, masks):
    acts = []
    logits = toy.hand_forward(model, x, masks, keep=acts)
    grads = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), acts)
    return [(a.detach() * g).abs() for a, g in zip(acts, grads, strict=False)]


def test_greedy_official_matches_the_round_by_round_reference():
    model, x = _setup()
    pathway = pruning.greedy_pathway(model, x, 0.6, step_size=0.1, progress=False)
    for i in range(x.shape[0]):
        expected = _hand_greedy_official(model, x[i : i + 1], 0.6, 0.1)
        for got, want in zip(_masks(pathway), expected, strict=False):
            assert torch.equal(got[i : i + 1], want)
    # the official rule puts dead and just-removed neurons back: far fewer removed than asked
    assert (pathway.sparsity < 0.6).all()


def test_an_official_greedy_round_saturates_once_the_share_asked_reaches_the_zeros():
    """Zero scores are lifted to the row's top before the quantile, so once the fraction asked
    reaches past the positive scores the threshold is the top and every contributing neuron
    goes, while the dead ones stay: the round keeps exactly the zero-score neurons, whatever
    fraction beyond that is asked (why the chapter's Greedy can keep many neurons yet lose the
    prediction)."""
    scores = {
        "a": torch.tensor([[0.0, 3.0, 1.0, 0.0], [5.0, 4.0, 0.0, 1.0]]),
        "b": torch.tensor([[2.0, 0.0], [0.0, 0.0]]),
    }
    third = pruning._official_greedy_round(scores, 1 / 3)  # k = 2: below the zeros' share
    assert third.masks["a"].tolist() == [[True, True, False, True], [True, False, True, False]]
    assert third.masks["b"].tolist() == [[False, True], [True, True]]
    for fraction in (0.5, 0.9):
        saturated = pruning._official_greedy_round(scores, fraction)
        for name, s in scores.items():
            assert torch.equal(saturated.masks[name], s == 0), (fraction, name)


def test_greedy_clean_in_one_round_is_the_taylor_pathway_and_is_nested_otherwise():
    model, x = _setup()
    one_round = pruning.greedy_pathway(
        model, x, 0.6, step_size=0.6, variant="clean", progress=False
    )
    taylor = select_pathway(neuron_contributions(model, x), 0.6)
    assert all(torch.equal(a, b) for a, b in zip(_masks(one_round), _masks(taylor), strict=False))
    coarse = pruning.greedy_pathway(model, x, 0.5, step_size=0.25, variant="clean", progress=False)
    fine = pruning.greedy_pathway(model, x, 0.5, step_size=0.05, variant="clean", progress=False)
    for pathway in (coarse, fine):
        assert (pathway.sparsity >= 0.5 - 1e-12).all()
        assert pruning.dead_fraction(pathway, pruning.site_activations(model, x)).eq(0).all()


# ------------------------------------------------------------------ random and active


def test_random_pathway_removes_the_fraction_in_every_site_and_is_seeded():
    model, x = _setup()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = pruning.random_pathway(model, x, 0.7, seed=5)
    assert torch.equal(state, torch.get_rng_state())
    b = pruning.random_pathway(model, x, 0.7, seed=5)
    c = pruning.random_pathway(model, x, 0.7, seed=6)
    assert all(torch.equal(m, n) for m, n in zip(_masks(a), _masks(b), strict=False))
    assert not all(torch.equal(m, n) for m, n in zip(_masks(a), _masks(c), strict=False))
    for name, mask in a.masks.items():
        n = mask[0].numel()
        kept = mask.flatten(1).sum(dim=1)
        assert (kept == n - removed_count(0.7, n)).all(), name


def test_active_pathway_and_dead_fraction_by_hand():
    model, x = _setup()
    acts = _hand_acts(model, x)
    active = pruning.active_pathway(model, x)
    assert all(torch.equal(m, a > 0) for m, a in zip(_masks(active), acts, strict=False))
    activations = pruning.site_activations(model, x)
    assert pruning.dead_fraction(active, activations).eq(0).all()
    # a hand-made pathway: keep the first half of every site's neurons
    masks = {}
    for name, act in activations.items():
        flat = torch.zeros(act[0].numel(), dtype=torch.bool)
        flat[: flat.numel() // 2] = True
        masks[name] = flat.view(act[0].shape).expand_as(act).clone()
    half = Pathway(masks)
    dead = sum((m & (a <= 0)).flatten(1).sum(1) for m, a in zip(masks.values(), acts, strict=False))
    kept = sum(m.flatten(1).sum(1) for m in masks.values())
    assert torch.allclose(pruning.dead_fraction(half, activations), dead.double() / kept)
    by_site = pruning.dead_fraction(half, activations, by_site=True)
    assert list(by_site) == list(masks)
    # contribution pathways never keep a dead neuron (zero contribution goes first)
    taylor = select_pathway(neuron_contributions(model, x), 0.3)
    assert pruning.dead_fraction(taylor, activations).eq(0).all()


def test_pathway_iou_is_the_jaccard_index():
    model, x = _setup()
    a = pruning.random_pathway(model, x, 0.5, seed=0)
    b = pruning.random_pathway(model, x, 0.5, seed=1)
    inter = sum((m & n).flatten(1).sum(1) for m, n in zip(_masks(a), _masks(b), strict=False))
    union = sum((m | n).flatten(1).sum(1) for m, n in zip(_masks(a), _masks(b), strict=False))
    assert torch.allclose(a.iou(b), inter.double() / union)
    assert a.iou(a).eq(1).all()


# ------------------------------------------------------------------ output and decoding


def test_output_preservation_by_hand():
    model, x = _setup()
    pathway = pruning.random_pathway(model, x, 0.6, seed=2)
    result = pruning.output_preservation(model, x, pathway)
    with torch.no_grad():
        full = F.softmax(toy.hand_forward(model, x), dim=1)
        restricted = F.softmax(toy.hand_forward(model, x, _masks(pathway)), dim=1)
    target = full.argmax(dim=1)
    p0 = full.gather(1, target.view(-1, 1)).squeeze(1)
    p1 = restricted.gather(1, target.view(-1, 1)).squeeze(1)
    assert torch.equal(result.target, target)
    assert torch.allclose(result.relative_change, (p1 - p0).abs() / p0)
    assert torch.equal(result.prediction_kept, restricted.argmax(1) == target)
    explicit = pruning.output_preservation(model, x, pathway, target=[0, 1, 2])
    assert explicit.target.tolist() == [0, 1, 2]


def test_decode_pathway_raises_the_target_logit_within_bounds():
    model, x = _setup()
    pathway = select_pathway(neuron_contributions(model, x, target=[0, 1, 2]), 0.5)
    decoded = pruning.decode_pathway(
        model, pathway, [0, 1, 2], like=x, bounds=(-1.0, 2.0), n_steps=150, progress=False
    )
    again = pruning.decode_pathway(
        model, pathway, [0, 1, 2], like=x, bounds=(-1.0, 2.0), n_steps=150, progress=False
    )
    assert torch.equal(decoded, again) and decoded.shape == x.shape
    assert decoded.min() >= -1.0 and decoded.max() <= 2.0
    early = pruning.decode_pathway(
        model, pathway, [0, 1, 2], like=x, bounds=(-1.0, 2.0), n_steps=20, progress=False
    )
    start = torch.full_like(x, 0.5)  # the mid-point of the bounds, where decoding starts
    masks = _masks(pathway)
    index = torch.tensor([[0], [1], [2]])
    with torch.no_grad():
        logit = [
            toy.hand_forward(model, z, masks).gather(1, index) for z in (start, early, decoded)
        ]
    assert (logit[1] > logit[0]).all() and (logit[2] > logit[1]).all()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, x: pruning.learned_pathway(m, x, 90), ValueError, "0.9"),
        (
            lambda m, x: pruning.decode_pathway(
                m, pruning.active_pathway(m, x), None, like=x, bounds=(0, 1)
            ),
            ValueError,
            "class to decode",
        ),
        (lambda m, x: pruning.learned_pathway(m, x, 0.5, init="zeros"), ValueError, "ones"),
        (lambda m, x: pruning.learned_pathway(m, x, 0.5, n_steps=0), ValueError, "steps"),
        (lambda m, x: pruning.greedy_pathway(m, x, 0.5, step_size=0), ValueError, "step"),
        (lambda m, x: pruning.greedy_pathway(m, x, 0.5, variant="x"), ValueError, "official"),
        (lambda m, x: pruning.random_pathway(m, x, -0.1), ValueError, "sparsity"),
        (
            lambda m, x: pruning.decode_pathway(
                m, pruning.active_pathway(m, x), 0, like=x, bounds=(1, 0)
            ),
            ValueError,
            "low < high",
        ),
        (
            lambda m, x: pruning.decode_pathway(
                m, pruning.active_pathway(m, x), 0, like=x[:1], bounds=(0, 1)
            ),
            ValueError,
            "batch",
        ),
        (
            lambda m, x: pruning.dead_fraction(pruning.active_pathway(m, x), {}),
            ValueError,
            "site_activations",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    model, x = _setup()
    with pytest.raises(error, match=match):
        call(model, x)


def test_the_official_percentile_and_ours_agree_away_from_ties():
    """Our k-th smallest threshold and numpy's interpolated percentile keep the same neurons when
    the scores are distinct and q * n is an integer (the official code uses np.percentile)."""
    scores = torch.rand(1, 200, dtype=torch.float64) + 0.1
    pathway = select_pathway({"s": scores}, 0.9)
    threshold = np.percentile(scores.numpy().ravel(), 90)
    official = torch.from_numpy(scores.numpy() > threshold)
    assert torch.equal(pathway.masks["s"], official)


def test_an_in_place_first_relu_never_writes_into_the_inputs():
    model = (
        torch.nn.Sequential(
            torch.nn.ReLU(inplace=True),
            torch.nn.Linear(4, 3),
            torch.nn.ReLU(),
            torch.nn.Linear(3, 2),
        )
        .double()
        .eval()
    )
    x = torch.randn(3, 4, dtype=torch.float64)
    kept = x.clone()
    pruning.site_activations(model, x)
    pruning.active_pathway(model, x)
    pruning.random_pathway(model, x, 0.5)
    assert torch.equal(x, kept)


@pytest.mark.parametrize("variant", ["official", "clean"])
def test_greedy_pathways_share_rounds_and_equal_separate_calls(variant):
    model, x = _setup()
    wanted = [0.3, 0.5, 0.55, 0.6, 0.0]  # 0.55 is off the 0.1 grid: it needs a run of its own
    together = pruning.greedy_pathways(
        model, x, wanted, step_size=0.1, variant=variant, progress=False
    )
    assert list(together) == sorted(wanted)
    for s in wanted:
        alone = pruning.greedy_pathway(model, x, s, step_size=0.1, variant=variant, progress=False)
        assert all(
            torch.equal(a, b) for a, b in zip(_masks(together[s]), _masks(alone), strict=False)
        )
        assert together[s].settings["sparsity"] == s
    # 0.3, 0.5 and 0.6 from one run of 6 rounds; 0.0 (one round at fraction 0) and 0.55 alone
    assert pruning._greedy_runs(sorted(wanted), 0.1) == [
        {3: 0.3, 5: 0.5, 6: 0.6},
        {1: 0.0},
        {6: 0.55},
    ]
