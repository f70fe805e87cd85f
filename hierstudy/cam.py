"""Temporary re-export for the notebooks (issue 17)."""

from hierstudy.datasets.selection import balanced_subset, localisation_set  # noqa: F401
from hierstudy.evaluation.localisation import (  # noqa: F401
    IOU_THRESHOLDS,
    KFR_POINT,
    LocalisationError,
    best_iou,
    box_iou,
    boxacc_at,
    cam_boxes,
    cam_thresholds,
    energy_in_box,
    maxboxacc_v2,
    wsol_scores,
)
from hierstudy.gradcam import (  # noqa: F401
    CamError,
    coarse_grid_fallback,
    gradcam_maps,
    layer_grids,
    vit_reshape_transform,
)
