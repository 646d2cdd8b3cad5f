"""The two custom visuals of the layer grid, each one draw call for every site at once.

``PlanesVisual``: all site planes as one indexed triangle mesh; per-vertex tint (the summary
statistic through the colour map) times one shared neuron atlas texture (a rectangle per site),
each rectangle dimmed by its own number of halvings (so fading a site needs no texel upload).
``GlowPointsVisual``: all above-threshold neurons as point sprites with a bright core and an
optional soft halo (the glow), blended additively; a fixed range of buffer slots per site lets
one site's points be replaced without touching the others.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from vispy import gloo
from vispy.scene.visuals import create_visual_node
from vispy.visuals import Visual

PLANE_VERTEX = np.dtype(
    [
        ("a_position", np.float32, 3),
        ("a_texcoord", np.float32, 2),
        ("a_color", np.float32, 4),
        ("a_shift", np.float32),
    ]
)
POINT_VERTEX = np.dtype([("a_position", np.float32, 3), ("a_value", np.float32)])

_PLANES_VERT = """
attribute vec3 a_position;
attribute vec2 a_texcoord;
attribute vec4 a_color;
attribute float a_shift;
varying vec2 v_texcoord;
varying vec4 v_color;
varying float v_shift;
void main() {
    v_texcoord = a_texcoord;
    v_color = a_color;
    v_shift = a_shift;
    gl_Position = $transform(vec4(a_position, 1.0));
}
"""

# The atlas holds, per neuron, 0 (quiet) .. 255 (far above threshold) as last written; the
# plane's shift (0..8, the same at its four corners) halves it that many times more, exactly
# like an integer right shift of the byte: floor(v / 2^k), with half a unit of margin so that
# rounding in the sampler or in exp2 cannot move it across an integer.
_PLANES_FRAG = """
uniform sampler2D u_atlas;
uniform float u_texture_on;
varying vec2 v_texcoord;
varying vec4 v_color;
varying float v_shift;
void main() {
    float t = texture2D(u_atlas, v_texcoord).r;
    float k = floor(v_shift + 0.5);
    if (k > 0.0) t = floor((t * 255.0 + 0.5) / exp2(k)) / 255.0;
    t *= u_texture_on;
    vec3 rgb = v_color.rgb * (0.72 + 0.5 * t) + vec3(0.35 * max(t - 0.5, 0.0));
    gl_FragColor = vec4(min(rgb, vec3(1.0)), v_color.a);
}
"""

# u_size is in scene units (a neuron cell is 1), so points grow as the camera closes in: find
# the scene direction of one framebuffer pixel along x, then measure u_size along it in pixels.
_POINTS_VERT = """
attribute vec3 a_position;
attribute float a_value;
uniform float u_size;
uniform float u_glow;
varying float v_value;
varying float v_fade;
void main() {
    v_value = a_value;
    if (a_value < 0.0) {  // an unused slot of the preallocated buffer
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 0.0;
        return;
    }
    vec4 pos = vec4(a_position, 1.0);
    vec4 fb = $visual_to_framebuffer(pos);
    vec4 side = $framebuffer_to_visual(fb + vec4(fb.w, 0.0, 0.0, 0.0));
    vec3 along = normalize(side.xyz / side.w - a_position);
    vec4 edge = $visual_to_framebuffer(vec4(a_position + along * u_size, 1.0));
    float pixels = abs(edge.x / edge.w - fb.x / fb.w);
    // Zoomed out (a cell under ~2 px) the atlas already shows activity: points fade away.
    v_fade = 0.08 + 0.92 * smoothstep(0.8, 3.0, pixels);
    gl_Position = $transform(pos);
    gl_PointSize = clamp(pixels, 1.5, 48.0) * (1.0 + 2.0 * u_glow) * (0.7 + 0.3 * a_value);
}
"""

_POINTS_FRAG = """
uniform vec3 u_color;
uniform float u_glow;
varying float v_value;
varying float v_fade;
void main() {
    float r = length(gl_PointCoord - vec2(0.5)) * 2.0;
    if (r > 1.0) discard;
    float scale = 1.0 + 2.0 * u_glow;
    float core = (1.0 - smoothstep(0.5 / scale, 1.0 / scale, r)) * (0.45 + 0.55 * v_value);
    float halo = u_glow * 0.18 * exp(-6.0 * r * r) * v_value * v_value;
    float a = clamp(core + halo, 0.0, 1.0) * v_fade;
    vec3 rgb = mix(u_color, vec3(1.0), 0.5 * core * v_value);
    gl_FragColor = vec4(rgb * a, a);  // premultiplied: additive on dark, 'over' on light
}
"""


class PlanesVisual(Visual):  # type: ignore[misc]
    """Quads with a tint per vertex and one atlas texture; ``set_data`` replaces the geometry."""

    def __init__(self) -> None:
        super().__init__(vcode=_PLANES_VERT, fcode=_PLANES_FRAG)
        self._vertices = np.zeros(0, PLANE_VERTEX)
        self._vbo = gloo.VertexBuffer(self._vertices)
        self._ibo = gloo.IndexBuffer(np.zeros((0, 3), np.uint32))
        self._atlas = gloo.Texture2D(np.zeros((1, 1), np.uint8), interpolation="nearest")
        self.shared_program.bind(self._vbo)
        self.shared_program["u_atlas"] = self._atlas
        self.shared_program["u_texture_on"] = 1.0
        self._draw_mode = "triangles"
        self._index_buffer = self._ibo
        # depth_mask explicitly: GL state persists, and the points turn depth writes off.
        self.set_gl_state(
            "opaque",
            depth_test=True,
            depth_mask=True,
            cull_face=False,
            polygon_offset_fill=True,
            polygon_offset=(1.0, 1.0),
        )

    def set_data(
        self,
        quads: npt.NDArray[np.float32],
        texcoords: npt.NDArray[np.float32],
        colors: npt.NDArray[np.float32],
    ) -> None:
        """(n, 4, 3) corners, (n, 4, 2) atlas coordinates, (n, 4) RGBA tint per plane."""
        n = len(quads)
        vertices = np.zeros(n * 4, PLANE_VERTEX)
        vertices["a_position"] = quads.reshape(-1, 3)
        vertices["a_texcoord"] = texcoords.reshape(-1, 2)
        vertices["a_color"] = np.repeat(colors, 4, axis=0)
        base = (np.arange(n, dtype=np.uint32) * 4)[:, None]
        corners = np.array([0, 1, 2, 0, 2, 3], np.uint32)  # two triangles per quad
        faces = (base + corners).reshape(-1, 3)
        self._vertices = vertices
        self._vbo.set_data(vertices)
        self.shared_program.bind(self._vbo)  # views made after the data know its layout
        self._ibo.set_data(faces.astype(np.uint32))
        self.update()

    def set_planes(
        self,
        colors: npt.NDArray[np.float32] | None = None,
        shifts: npt.NDArray[np.integer] | None = None,
    ) -> None:
        """Per plane, same planes: the (n, 4) RGBA tint and/or how many more times (0..8) its
        atlas texels are halved; one upload for both."""
        if colors is not None:
            self._vertices["a_color"] = np.repeat(colors, 4, axis=0)
        if shifts is not None:
            self._vertices["a_shift"] = np.repeat(shifts, 4)
        self._vbo.set_data(self._vertices)
        self.update()

    def set_atlas(self, image: npt.NDArray[np.uint8], first_row: int | None = None) -> None:
        """The neuron atlas (uint8, 0..255), uploaded at the next draw (not copied): all of it,
        or whole rows of it from ``first_row`` on (same width, texture size unchanged)."""
        if first_row is None:
            self._atlas.set_data(image)
        else:
            self._atlas.set_data(image, offset=(first_row, 0))
        self.update()

    def set_texture_on(self, on: bool) -> None:
        self.shared_program["u_texture_on"] = 1.0 if on else 0.0
        self.update()

    def _prepare_transforms(self, view):  # type: ignore[no-untyped-def]
        view.view_program.vert["transform"] = view.get_transform()

    def _prepare_draw(self, view):  # type: ignore[no-untyped-def]
        return len(self._vertices) > 0

    def _compute_bounds(self, axis, view):  # type: ignore[no-untyped-def]
        if not len(self._vertices):
            return None
        column = self._vertices["a_position"][:, axis]
        return float(column.min()), float(column.max())


class GlowPointsVisual(Visual):  # type: ignore[misc]
    """Point sprites: a bright core and, with glow on, an additive halo."""

    def __init__(self, size: float = 1.2, color: tuple[float, float, float] = (0.4, 0.9, 1.0)):
        super().__init__(vcode=_POINTS_VERT, fcode=_POINTS_FRAG)
        self._count = 0
        self._buffer = np.zeros(0, POINT_VERTEX)
        self._vbo = gloo.VertexBuffer(self._buffer)
        self.shared_program["u_size"] = size
        self.shared_program["u_glow"] = 1.0
        self.shared_program["u_color"] = color
        self._draw_mode = "points"
        self.set_gl_state(
            depth_test=True,
            depth_mask=False,
            blend=True,
            blend_func=("one", "one"),
            cull_face=False,
        )

    @property
    def count(self) -> int:
        return self._count

    def reserve(self, capacity: int) -> None:
        """A buffer of ``capacity`` unused slots (intensity -1), replacing every point."""
        self._buffer = np.zeros(capacity, POINT_VERTEX)
        self._buffer["a_value"] = -1.0
        self._vbo.set_data(self._buffer)
        self.shared_program.bind(self._vbo)
        self._count = 0
        self.update()

    def write(self, slots: npt.NDArray[np.int64], points: npt.NDArray[np.float32]) -> None:
        """Put ``points`` ((n, 4) rows as for ``set_data``) in ``slots`` (sent by ``commit``)."""
        self._buffer[slots] = np.ascontiguousarray(points).view(POINT_VERTEX).reshape(-1)

    def points_at(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """A copy of the (n, 4) rows in ``slots``."""
        rows: npt.NDArray[np.float32] = self._buffer[slots].view(np.float32).reshape(-1, 4)
        return rows

    def forget(self, slots: npt.NDArray[np.int64]) -> None:
        """Mark ``slots`` unused (sent by ``commit``)."""
        self._buffer["a_value"][slots] = -1.0

    def commit(self, first: int, stop: int, count: int) -> None:
        """Upload the slots ``first:stop`` changed by ``write``/``forget``; ``count`` points.

        The slice is not copied: leave those rows alone until the draw, or write newer data.
        """
        self._count = count
        if stop > first:
            self._vbo.set_subdata(self._buffer[first:stop], offset=first)
        self.update()

    def set_data(self, points: npt.NDArray[np.float32]) -> None:
        """(n, 4) float32 rows of x, y, z and intensity 0..1, one per point.

        The buffer grows by doubling and never shrinks, so its layout (and the program's
        binding) stays put; slots past the points are marked unused (negative intensity) and
        only the rows that changed are uploaded.
        """
        count, previous = len(points), self._count
        if count > len(self._buffer):
            self._buffer = np.zeros(max(1024, 1 << (count - 1).bit_length()), POINT_VERTEX)
            self._buffer["a_value"] = -1.0
            self._vbo.set_data(self._buffer)
            self.shared_program.bind(self._vbo)
            previous = len(self._buffer)
        rows = self._buffer.view(np.float32).reshape(-1, 4)
        rows[:count] = points
        rows[count:previous, 3] = -1.0
        self._count = count
        touched = max(count, previous)
        if touched:
            self._vbo.set_subdata(self._buffer[:touched])
        self.update()

    def set_glow(self, on: bool) -> None:
        self.shared_program["u_glow"] = 1.0 if on else 0.0
        self.update()

    def set_color(self, color: tuple[float, float, float]) -> None:
        self.shared_program["u_color"] = color
        self.update()

    def _prepare_transforms(self, view):  # type: ignore[no-untyped-def]
        vert = view.view_program.vert
        vert["transform"] = view.get_transform()
        vert["visual_to_framebuffer"] = view.get_transform("visual", "framebuffer")
        vert["framebuffer_to_visual"] = view.get_transform("framebuffer", "visual")

    def _prepare_draw(self, view):  # type: ignore[no-untyped-def]
        return self._count > 0


Planes = create_visual_node(PlanesVisual)
GlowPoints = create_visual_node(GlowPointsVisual)
