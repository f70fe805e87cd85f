import numpy as np
import torch

from hierstudy.proxy_tree import nearest_smaller_proxy, proxy_tree


def test_planted_two_level_tree_is_recovered_edge_for_edge():
    # root proxy p0 at the origin, family proxies p1, p2 at radius 1, one proxy per class near
    # radius 1.4 (p3-p6) and p7 above no class; four classes of samples at radius 1.8
    proxies = torch.tensor(
        [
            [0.0, 0.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [1.4, 0.05],
            [1.4, -0.05],
            [-0.03, 1.4],
            [0.03, 1.4],
            [-1.0, -1.0],
        ],
        dtype=torch.float64,
    )
    centres = torch.tensor([[1.8, 0.3], [1.8, -0.3], [-0.3, 1.8], [0.3, 1.8]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    samples = centres.repeat_interleave(5, 0) + 0.01 * torch.randn(
        20, 2, generator=gen, dtype=torch.float64
    )
    labels = np.repeat(np.arange(4), 5)
    h = proxy_tree(samples, labels, proxies, ["a", "b", "c", "d"])
    assert sorted(h.edges()) == [
        ("p0", "p1"),
        ("p0", "p2"),
        ("p1", "p3"),
        ("p1", "p4"),
        ("p2", "p5"),
        ("p2", "p6"),
        ("p3", "a"),
        ("p4", "b"),
        ("p5", "c"),
        ("p6", "d"),
    ]  # p7 pruned
    assert h.root == "p0"


def test_points_with_no_smaller_proxy_get_minus_one():
    proxies = torch.tensor([[0.5, 0.0], [1.0, 0.0]], dtype=torch.float64)
    points = torch.tensor([[0.1, 0.0], [1.5, 0.0], [0.0, 0.8]], dtype=torch.float64)
    np.testing.assert_array_equal(nearest_smaller_proxy(points, proxies), [-1, 1, 0])
