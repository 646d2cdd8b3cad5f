"""The two custom visuals of the layer grid, each one draw call for every site at once.

``PlanesVisual``: all site planes as one indexed triangle mesh; per-vertex tint (the summary
statistic through the colour map) times one shared neuron atlas texture (a rectangle per site),
each rectangle dimmed by its own number of halvings (so fading a site needs no texel upload).
``GlowPointsVisual``: all above-threshold neurons as point sprites with a bright core, blended
additively; a fixed range of buffer slots per site lets one site's points be replaced without
touching the others.
``Bloom``: the glow, a post-process of the points: the scene is drawn into a texture whose alpha
holds only the points' light, which is averaged down to a quarter and a sixteenth of the
resolution, blurred there and added back around the points.
"""

from __future__ import annotations

from typing import Any

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
# A point is its neuron's index in its site's grid (exact as a float below 2**24) and its
# intensity; the vertex shader places it from its slot's site (``a_site``, a buffer of its own
# that changes only with the slot layout) and the site table (``u_sites``).
POINT_VERTEX = np.dtype([("a_neuron", np.float32), ("a_value", np.float32)])
SITE_TABLE_WIDTH = 256  # texels per row of the site table
KEEP_ALL = (-3.0e38, 3.0e38, -3.0e38, 3.0e38)  # u_keep that keeps everything

_PLANES_VERT = """
attribute vec3 a_position;
attribute vec2 a_texcoord;
attribute vec4 a_color;
attribute float a_shift;
varying vec2 v_texcoord;
varying vec4 v_color;
varying float v_shift;
varying vec3 v_position;
void main() {
    v_texcoord = a_texcoord;
    v_color = a_color;
    v_shift = a_shift;
    v_position = a_position;
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
varying vec3 v_position;
uniform vec4 u_keep;  // x from, x to, z from, z to: the rest is not drawn (an isolated block)
void main() {
    if (v_position.x < u_keep.x || v_position.x > u_keep.y
        || v_position.z < u_keep.z || v_position.z > u_keep.w) discard;
    float t = texture2D(u_atlas, v_texcoord).r;
    float k = floor(v_shift + 0.5);
    if (k > 0.0) t = floor((t * 255.0 + 0.5) / exp2(k)) / 255.0;
    t *= u_texture_on;
    vec3 rgb = v_color.rgb * (0.72 + 0.5 * t) + vec3(0.35 * max(t - 0.5, 0.0));
    gl_FragColor = vec4(min(rgb, vec3(1.0)), v_color.a);
}
"""

# A point's position: its site's row of u_sites holds the centre of the site's neuron 0 and its
# grid columns; neuron i is at row floor(i / cols) (i + 0.5 keeps the float quotient clear of
# the integer below it), column i - row * cols, one world unit per cell along +y and -z.
# u_size is in scene units (a neuron cell is 1), so points grow as the camera closes in: find
# the scene direction of one framebuffer pixel along x, then measure u_size along it in pixels.
_POINTS_VERT = """
attribute float a_neuron;
attribute float a_value;
attribute float a_site;
uniform sampler2D u_sites;
uniform vec2 u_sites_shape;  // texels per row, rows
uniform float u_size;
uniform vec4 u_keep;  // as the planes'
varying float v_value;
varying float v_fade;
void main() {
    v_value = a_value;
    if (a_value < 0.0) {  // an unused slot of the preallocated buffer
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 0.0;
        return;
    }
    float table_row = floor((a_site + 0.5) / u_sites_shape.x);
    vec2 uv = (vec2(a_site - table_row * u_sites_shape.x, table_row) + 0.5) / u_sites_shape;
    vec4 site = texture2DLod(u_sites, uv, 0.0);
    float row = floor((a_neuron + 0.5) / site.w);
    vec3 position = site.xyz + vec3(0.0, a_neuron - row * site.w, -row);
    if (position.x < u_keep.x || position.x > u_keep.y
        || position.z < u_keep.z || position.z > u_keep.w) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 0.0;
        return;
    }
    vec4 pos = vec4(position, 1.0);
    vec4 fb = $visual_to_framebuffer(pos);
    vec4 side = $framebuffer_to_visual(fb + vec4(fb.w, 0.0, 0.0, 0.0));
    vec3 along = normalize(side.xyz / side.w - position);
    vec4 edge = $visual_to_framebuffer(vec4(position + along * u_size, 1.0));
    float pixels = abs(edge.x / edge.w - fb.x / fb.w);
    // Zoomed out (a cell under ~2 px) the atlas already shows activity: points fade away.
    v_fade = 0.08 + 0.92 * smoothstep(0.8, 3.0, pixels);
    gl_Position = $transform(pos);
    gl_PointSize = clamp(pixels, 1.5, 48.0) * (0.7 + 0.3 * a_value);
}
"""

# The sprite's alpha is its light: the bloom (when on) reads it from the scene's alpha channel.
_POINTS_FRAG = """
uniform vec3 u_color;
varying float v_value;
varying float v_fade;
void main() {
    float r = length(gl_PointCoord - vec2(0.5)) * 2.0;
    if (r > 1.0) discard;
    float core = (1.0 - smoothstep(0.5, 1.0, r)) * (0.45 + 0.55 * v_value);
    float a = clamp(core, 0.0, 1.0) * v_fade;
    vec3 rgb = mix(u_color, vec3(1.0), 0.5 * core * v_value);
    gl_FragColor = vec4(rgb * a, a);  // premultiplied: additive on dark, 'over' on light
}
"""

# The bloom's passes: full-viewport quads.
_QUAD_VERT = """
attribute vec2 a_position;
varying vec2 v_uv;
void main() {
    v_uv = a_position * 0.5 + 0.5;
    gl_Position = vec4(a_position, 0.0, 1.0);
}
"""

# A texel of the near level (a quarter of the resolution): the mean light of the 4 x 4 scene
# texels under it. The scene texture is sampled nearest (so that the composite reads it
# cheaply), hence sixteen taps.
_BLOOM_DOWN_SCENE = """
uniform sampler2D u_image;
uniform vec2 u_texel;  // one scene texel in uv
varying vec2 v_uv;
void main() {
    float a = 0.0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            a += texture2D(u_image, v_uv + u_texel * vec2(float(i) - 1.5, float(j) - 1.5)).a;
        }
    }
    gl_FragColor = vec4(vec3(a / 16.0), 1.0);
}
"""

# A texel of a 4 times smaller image: the mean of the 4 x 4 texels under it, from four bilinear
# taps each between 2 x 2 texels.
_BLOOM_DOWN = """
uniform sampler2D u_image;
uniform vec2 u_texel;  // one texel of u_image in uv
uniform vec4 u_channel;  // which channel holds the light
varying vec2 v_uv;
void main() {
    vec4 sum = texture2D(u_image, v_uv + u_texel * vec2(-1.0, -1.0))
             + texture2D(u_image, v_uv + u_texel * vec2(1.0, -1.0))
             + texture2D(u_image, v_uv + u_texel * vec2(-1.0, 1.0))
             + texture2D(u_image, v_uv + u_texel * vec2(1.0, 1.0));
    gl_FragColor = vec4(vec3(0.25 * dot(sum, u_channel)), 1.0);
}
"""

# A 9-tap Gaussian along u_step in five bilinear taps (weights of the binomial kernel), plus
# u_add_weight times u_add (the wide level, added to the near one in its last pass).
_BLOOM_BLUR = """
uniform sampler2D u_image;
uniform sampler2D u_add;
uniform float u_add_weight;
uniform vec2 u_step;  // one texel along the blur's direction, in uv
varying vec2 v_uv;
void main() {
    vec2 near = u_step * 1.3846153846, far = u_step * 3.2307692308;
    float c = texture2D(u_image, v_uv).r * 0.2270270270
            + (texture2D(u_image, v_uv + near).r + texture2D(u_image, v_uv - near).r)
              * 0.3162162162
            + (texture2D(u_image, v_uv + far).r + texture2D(u_image, v_uv - far).r)
              * 0.0702702703;
    if (u_add_weight > 0.0) c += u_add_weight * texture2D(u_add, v_uv).r;
    gl_FragColor = vec4(vec3(c), 1.0);
}
"""

# The scene with the blurred light added in the points' colour (whitening where it is dense)
# on the dark theme, or laid over it as a tint on the light one.
_BLOOM_COMPOSITE = """
uniform sampler2D u_scene;
uniform sampler2D u_bloom;
uniform vec3 u_color;
uniform float u_strength;
uniform float u_additive;
varying vec2 v_uv;
void main() {
    vec3 scene = texture2D(u_scene, v_uv).rgb;
    float b = u_strength * texture2D(u_bloom, v_uv).r;
    vec3 rgb;
    if (u_additive > 0.5) {
        rgb = scene + u_color * b + vec3(0.25 * b * b);
    } else {
        rgb = mix(scene, u_color, clamp(0.5 * b, 0.0, 0.45));
    }
    gl_FragColor = vec4(min(rgb, vec3(1.0)), 1.0);
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
        self.shared_program["u_keep"] = KEEP_ALL
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

    def set_keep(self, keep: tuple[float, float, float, float]) -> None:
        """Draw only what lies within x from..to and z from..to (``KEEP_ALL``: everything)."""
        self.shared_program["u_keep"] = keep
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
    """Point sprites with a bright core; their alpha is their light (the bloom's source)."""

    def __init__(self, size: float = 1.2, color: tuple[float, float, float] = (0.4, 0.9, 1.0)):
        super().__init__(vcode=_POINTS_VERT, fcode=_POINTS_FRAG)
        self._count = 0
        self._buffer = np.zeros(0, POINT_VERTEX)
        self._vbo = gloo.VertexBuffer(self._buffer)
        self._site_vbo = gloo.VertexBuffer(np.zeros(0, np.float32))
        self._sites = gloo.Texture2D(
            np.zeros((1, 1, 4), np.float32), internalformat="rgba32f", interpolation="nearest"
        )
        self.shared_program["u_sites"] = self._sites
        self.shared_program["u_sites_shape"] = (1.0, 1.0)
        self.shared_program["u_size"] = size
        self.shared_program["u_color"] = color
        self.shared_program["u_keep"] = KEEP_ALL
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

    @property
    def rows(self) -> npt.NDArray[np.float32]:
        """The buffer as (slots, 2) float32 rows (neuron index, intensity), writable in place;
        sent by ``commit``."""
        rows: npt.NDArray[np.float32] = self._buffer.view(np.float32).reshape(-1, 2)
        return rows

    def set_sites(self, origins: npt.NDArray[np.float32], cols: npt.NDArray[np.integer]) -> None:
        """Per site: the world position of the centre of its neuron 0 and its grid columns."""
        n = max(len(cols), 1)
        shape = (-(-n // SITE_TABLE_WIDTH), min(n, SITE_TABLE_WIDTH))
        table = np.zeros((shape[0] * shape[1], 4), np.float32)
        table[: len(cols), :3] = origins
        table[: len(cols), 3] = np.maximum(cols, 1)
        self._sites.set_data(table.reshape(*shape, 4))
        self.shared_program["u_sites_shape"] = (float(shape[1]), float(shape[0]))
        self.update()

    def reserve(self, sites: int, capacity: int) -> None:
        """``capacity`` unused slots (intensity -1) for each of ``sites`` sites, replacing every
        point: site ``i`` owns slots ``i * capacity`` to ``(i + 1) * capacity``."""
        slots = max(1, sites * capacity)
        self._buffer = np.zeros(slots, POINT_VERTEX)
        self._buffer["a_value"] = -1.0
        self._vbo.set_data(self._buffer)
        owner = np.zeros(slots, np.float32)
        owner[: sites * capacity] = np.repeat(np.arange(sites, dtype=np.float32), capacity)
        self._site_vbo.set_data(owner)
        self.shared_program.bind(self._vbo)
        self.shared_program["a_site"] = self._site_vbo
        self._count = 0
        self.update()

    def write(self, slots: npt.NDArray[np.int64], points: npt.NDArray[np.float32]) -> None:
        """Put ``points`` ((n, 2) rows as ``rows`` holds them) in ``slots`` (sent by
        ``commit``)."""
        self._buffer[slots] = np.ascontiguousarray(points).view(POINT_VERTEX).reshape(-1)

    def points_at(self, slots: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """A copy of the (n, 2) rows in ``slots``."""
        rows: npt.NDArray[np.float32] = self._buffer[slots].view(np.float32).reshape(-1, 2)
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

    def set_color(self, color: tuple[float, float, float]) -> None:
        self.shared_program["u_color"] = color

    def set_keep(self, keep: tuple[float, float, float, float]) -> None:
        """Draw only the points within x from..to and z from..to, as the planes."""
        self.shared_program["u_keep"] = keep
        self.update()

    def _prepare_transforms(self, view):  # type: ignore[no-untyped-def]
        vert = view.view_program.vert
        vert["transform"] = view.get_transform()
        vert["visual_to_framebuffer"] = view.get_transform("visual", "framebuffer")
        vert["framebuffer_to_visual"] = view.get_transform("framebuffer", "visual")

    def _prepare_draw(self, view):  # type: ignore[no-untyped-def]
        return self._count > 0


class Bloom:
    """The points' glow as a post-process, in plain gloo programs (one draw call a pass).

    ``GridCanvas`` draws the scene into ``scene_fbo`` (colour, and alpha where only the points
    write: their light) and calls ``finish``: the light is averaged down to a quarter of the
    resolution (the near glow, 8 px and more; sixteen nearest taps, so that the composite reads
    the scene texture nearest, which Mesa does faster) and from there to a sixteenth (the wide
    haze),
    each level is blurred by a separable Gaussian (two passes), the wide one added to the near
    one in its last pass, and the scene is drawn to the target with the result added in the
    points' colour. Six passes work on a sixteenth of the pixels or less, so the cost is about
    that of one more full-screen pass, whatever the number of points.
    """

    WIDE = 0.6  # the wide haze's weight against the near glow
    STRENGTH = 2.5

    def __init__(self, color: tuple[float, float, float] = (0.35, 0.9, 1.0)) -> None:
        quad = gloo.VertexBuffer(np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32))
        self._down_scene = gloo.Program(_QUAD_VERT, _BLOOM_DOWN_SCENE)
        self._down = gloo.Program(_QUAD_VERT, _BLOOM_DOWN)
        self._blur = gloo.Program(_QUAD_VERT, _BLOOM_BLUR)
        self._composite = gloo.Program(_QUAD_VERT, _BLOOM_COMPOSITE)
        for program in (self._down_scene, self._down, self._blur, self._composite):
            program["a_position"] = quad
        self._composite["u_strength"] = self.STRENGTH
        self.set_color(color, additive=True)
        self._size: tuple[int, int] | None = None
        self._scene: gloo.Texture2D | None = None
        self.scene_fbo: gloo.FrameBuffer | None = None
        # Per level (near, wide): the image and a spare for the first blur pass.
        self._levels: list[tuple[gloo.FrameBuffer, gloo.FrameBuffer]] = []

    def set_color(self, color: tuple[float, float, float], *, additive: bool) -> None:
        """The glow's colour, added (dark theme) or laid over as a tint (light theme)."""
        self._composite["u_color"] = color
        self._composite["u_additive"] = 1.0 if additive else 0.0

    def prepare(self, size: tuple[int, int]) -> gloo.FrameBuffer:
        """The framebuffer to draw the scene into, ``size`` (height, width) pixels."""
        if size != self._size:
            self._allocate(size)
        assert self.scene_fbo is not None
        return self.scene_fbo

    def _allocate(self, size: tuple[int, int]) -> None:
        h, w = size
        self._size = size
        self._scene = _texture((h, w), interpolation="nearest")
        self.scene_fbo = gloo.FrameBuffer(self._scene, gloo.RenderBuffer((h, w)))
        self._levels = []
        for factor in (4, 16):
            shape = (max(1, -(-h // factor)), max(1, -(-w // factor)))
            image = gloo.FrameBuffer(_texture(shape, "rgba16f"))
            self._levels.append((image, gloo.FrameBuffer(_texture(shape, "rgba16f"))))
        self._composite["u_scene"] = self._scene
        self._composite["u_bloom"] = self._levels[0][0].color_buffer

    def finish(self, viewport: tuple[int, int, int, int]) -> None:
        """Blur the light of the scene drawn into ``scene_fbo`` and draw the scene with it to
        the current target, whose ``viewport`` (x, y, width, height) is restored for that.

        The passes bind their framebuffers directly (not through the canvas's stack, which
        would recompute every visual's transforms for each)."""
        assert self._scene is not None
        gloo.set_state(blend=False, depth_test=False, cull_face=False)
        gloo.set_color_mask(True, True, True, True)
        (near, near_spare), (wide, wide_spare) = self._levels
        self._down_scene["u_image"] = self._scene  # the light: the scene's alpha
        self._down_scene["u_texel"] = (1.0 / self._scene.shape[1], 1.0 / self._scene.shape[0])
        _draw_into(near, self._down_scene)
        self._downsample(near.color_buffer, (1.0, 0.0, 0.0, 0.0), wide)
        self._gaussian(wide, wide_spare, None)
        self._gaussian(near, near_spare, wide)
        gloo.set_viewport(*viewport)
        self._composite.draw("triangle_strip")

    def _downsample(self, source: gloo.Texture2D, channel: tuple[float, ...], into: Any) -> None:
        h, w = source.shape[:2]
        self._down["u_image"] = source
        self._down["u_texel"] = (1.0 / w, 1.0 / h)
        self._down["u_channel"] = channel
        _draw_into(into, self._down)

    def _gaussian(self, image: Any, spare: Any, add: Any) -> None:
        """Blur ``image`` in place (through ``spare``), adding level ``add`` in the last pass."""
        h, w = image.color_buffer.shape[:2]
        blur = self._blur
        blur["u_add"] = (add if add is not None else image).color_buffer
        for step, read, write, weight in (
            ((1.0 / w, 0.0), image, spare, 0.0),
            ((0.0, 1.0 / h), spare, image, self.WIDE if add is not None else 0.0),
        ):
            blur["u_image"] = read.color_buffer
            blur["u_step"] = step
            blur["u_add_weight"] = weight
            _draw_into(write, blur)


def _draw_into(fbo: gloo.FrameBuffer, program: gloo.Program) -> None:
    """One full-viewport pass of ``program`` into ``fbo``."""
    h, w = fbo.color_buffer.shape[:2]
    with fbo:
        gloo.set_viewport(0, 0, w, h)
        program.draw("triangle_strip")


def _texture(
    shape: tuple[int, int], internalformat: str | None = None, interpolation: str = "linear"
) -> gloo.Texture2D:
    return gloo.Texture2D(
        shape=(*shape, 4),
        internalformat=internalformat,
        interpolation=interpolation,
        wrapping="clamp_to_edge",
    )


Planes = create_visual_node(PlanesVisual)
GlowPoints = create_visual_node(GlowPointsVisual)
