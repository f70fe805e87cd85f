import pytest
import torch
from torch import nn

from hierstudy import methods
from hierstudy.hierarchy import toy_hierarchy
from hierstudy.losses.hier import HIER, HIERSph

METHODS = ["ce", "center", "corr", "corr_cls", "dml", "dml_zero_shot", "hier", "kfr"]


def context(seed: int = 0) -> methods.Context:
    return methods.Context(toy_hierarchy(), epochs=4, seed=seed, backbone="resnet_small")


def test_the_registry_lists_and_finds_the_methods():
    assert methods.list_methods() == METHODS
    assert [m for m in METHODS if methods.is_zero_shot(m)] == ["dml_zero_shot", "hier"]
    assert methods.get_method("kfr").builder is methods.kfr
    with pytest.raises(methods.MethodError, match=r"unknown method 'svm'; choose one of \['ce'"):
        methods.get_method("svm")


def test_register_method_adds_a_builder_under_its_name(monkeypatch):
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))

    @methods.register_method("toy", zero_shot=True)
    def toy(ctx, width: int = 3):
        return methods.Recipe("linear", [], embed_dim=width)

    assert "toy" in methods.list_methods() and methods.is_zero_shot("toy")
    assert methods.get_method("toy")(context(), width=5).embed_dim == 5
    with pytest.raises(methods.MethodError, match="'toy' is already registered"):
        methods.register_method("toy")(toy)


def test_an_unknown_knob_names_the_method_and_its_knobs():
    kfr = methods.get_method("kfr")
    assert kfr.knobs == {
        "alpha": 30.0,
        "phase1": 0.5,
        "standardise": "vector",
        "reduction": "mean",
        "edge_weight": 1.0,
    }
    message = r"method 'kfr' has no knob 'beta'; its knobs \(with defaults\): alpha=30.0, "
    with pytest.raises(methods.MethodError, match=message + "phase1=0.5, standardise='vector'"):
        kfr(context(), beta=1.0)
    with pytest.raises(methods.MethodError, match="method 'ce' has no knob 'lam'.*: none"):
        methods.get_method("ce").check({"lam": 0.1})
    assert kfr.non_default({"alpha": 30.0, "phase1": 0.25}) == {"phase1": 0.25}


def test_hier_proxies_follow_the_rule_and_reach_the_papers_512():
    assert [methods.hier_proxies(n) for n in (17, 98, 100, 11318)] == [128, 512, 512, 512]
    assert methods.hier_proxies(1) == 8 and methods.hier_proxies(26) == 256


def test_hyperbolic_recipes_record_the_balls_curvature():
    ball = methods.get_method("hier")(context())
    assert ball.head == "hyperbolic" and ball.curvature == 0.1
    assert ball.terms[1].loss.c == ball.curvature
    sphere = methods.get_method("hier")(context(), sphere=True)
    assert sphere.head == "embedding" and sphere.curvature is None
    assert methods.get_method("ce")(context()).curvature is None


KNOBS = {"dml": {"loss": "contrastive_l1"}, "hier": {"sphere": True}}


@pytest.mark.parametrize(
    "method, knobs",
    [(m, {}) for m in METHODS] + list(KNOBS.items()) + [("dml_zero_shot", {"metric": "ms"})],
)
def test_every_term_rebuilds_from_its_state(method, knobs):
    recipe = methods.add_kfr(methods.get_method(method)(context(), **knobs), context(), 1.0)
    for term in recipe.terms:
        with torch.no_grad():  # trained parameters, unlike a fresh module's
            for value in term.loss.parameters():
                value.add_(1.0)
        state = term.loss.state_dict()
        module = methods.rebuild_loss(term.name, state, knobs, recipe.curvature)
        assert type(module) is type(term.loss)
        module.load_state_dict(state)
        for key, value in module.state_dict().items():
            assert torch.equal(value, state[key]), (term.name, key)
    if method == "hier":
        kind = HIERSph if knobs.get("sphere") else HIER
        assert type(next(t.loss for t in recipe.terms if t.name == "hier")) is kind
    with pytest.raises(methods.MethodError, match="no method has a loss term named 'svm'"):
        methods.rebuild_loss("svm", {}, {}, None)


def test_kfr_is_ce_with_the_quantitative_relativity_term_in_its_second_phase():
    recipe = methods.get_method("kfr")(context(), alpha=3.0, phase1=0.5)
    (ce, kfr) = recipe.terms
    assert isinstance(ce.loss, nn.CrossEntropyLoss) and ce.start_epoch == 0
    assert (kfr.name, kfr.weight, kfr.input, kfr.start_epoch) == ("kfr", 3.0, "features", 2)
    assert len(methods.get_method("kfr")(context(), alpha=0.0).terms) == 1


def test_center_is_ce_plus_the_center_loss_at_the_authors_weight():
    # Barz & Denzler's code: learn_center_loss.py, --center_loss_weight 0.1 (softmax at 1.0)
    ce, center = methods.get_method("center")(context()).terms
    assert (ce.name, ce.weight) == ("ce", 1.0)
    assert (center.name, center.weight, center.input) == ("center", 0.1, "features")
    assert methods.get_method("center")(context(), lam=0.01).terms[1].weight == 0.01


def test_scale_knobs_reach_the_losses():
    """KFR's scale knobs and HIER's Möbius ε (docs/conventions.md) reach the loss modules."""
    term = methods.get_method("kfr")(context(), reduction="sum", edge_weight=0.1).terms[-1]
    assert (term.loss.reduction, term.loss.edge_weight) == ("sum", 0.1)
    assert methods.get_method("kfr")(context()).terms[-1].loss.reduction == "mean"
    hier = methods.get_method("hier")(context(), dim=8, mobius_eps=1e-5).terms[-1]
    assert hier.loss.mobius_eps == 1e-5
    assert methods.get_method("hier")(context(), dim=8).terms[-1].loss.mobius_eps == 0.0
