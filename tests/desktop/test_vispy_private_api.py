"""The layer grid's canvas overrides two private members of VisPy's SceneCanvas
(``views/layer_grid.py``, ``GridCanvas``): ``_draw_scene(bgcolor=None)``, the one hook between
the clear and the scene's draw, and ``_vp_stack``, the viewport stack of a ``render`` into a
region. A VisPy release that renames or reshapes either would leave the grid without its depth
reset and its bloom, silently. These tests fail first, by name."""

from __future__ import annotations

import inspect

from vispy import scene

from synapse_desktop.views.layer_grid import GridCanvas


def test_scene_canvas_still_draws_its_scene_through_draw_scene_with_a_bgcolor() -> None:
    hook = getattr(scene.SceneCanvas, "_draw_scene", None)
    assert hook is not None, "vispy.scene.SceneCanvas._draw_scene is gone: update GridCanvas"
    parameters = inspect.signature(hook).parameters
    assert list(parameters) == ["self", "bgcolor"], parameters
    assert parameters["bgcolor"].default is None
    # ... and the canvas still calls it on every draw.
    assert "_draw_scene" in inspect.getsource(scene.SceneCanvas.on_draw)
    assert GridCanvas._draw_scene is not scene.SceneCanvas._draw_scene


def test_scene_canvas_still_keeps_its_viewports_on_vp_stack() -> None:
    source = inspect.getsource(scene.SceneCanvas)
    assert "self._vp_stack" in source, "SceneCanvas._vp_stack is gone: update GridCanvas"
    assert "_vp_stack.append" in source or "_vp_stack.pop" in source
