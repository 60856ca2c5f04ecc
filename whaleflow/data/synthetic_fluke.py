"""One procedural fluke and one photo of it: the drawing behind :mod:`.synthetic`.

A fluke's identity (:func:`draw_individual`) is resolution-independent: two lobes, a notch,
a jagged trailing edge (teeth, ripples, bites, a clipped tip) and a pigment pattern
(thresholded blobs with partial left/right symmetry, spots, scars). :func:`draw_texture`
renders it once per individual in a canonical frame; :func:`draw_photo` takes a random view
of that texture on a sea background (:func:`draw_sea`) and encodes it as a JPEG. Every draw
comes from the generator passed in, so the same generators give the same bytes.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from .synthetic_style import SynthStyle, add_occluders, add_tint

__all__ = ["U_RANGE", "V_RANGE", "draw_individual", "draw_photo", "draw_sea", "draw_texture", "trailing_edge"]

U_RANGE, V_RANGE = (-1.15, 1.15), (-0.55, 0.75)  # canonical frame; the span is u in [-1, 1]


def draw_individual(rng: np.random.Generator) -> dict:
    """Resolution-independent parameters of one fluke (its identity)."""
    n_blobs = int(rng.integers(6, 14))
    blobs = np.column_stack([rng.uniform(-0.9, 0.9, n_blobs), rng.uniform(-0.15, 0.25, n_blobs),
                             rng.uniform(0.05, 0.25, n_blobs), rng.normal(0, 1, n_blobs)])
    mirror = blobs[rng.random(n_blobs) < 0.6].copy()  # flukes are roughly, never exactly, symmetric
    mirror[:, 0] = -mirror[:, 0] + rng.normal(0, 0.06, len(mirror))
    mirror[:, 1] += rng.normal(0, 0.03, len(mirror))
    n_teeth, n_ripple, n_spots, n_scars = (int(rng.integers(*r)) for r in ((8, 22), (3, 7), (4, 40), (0, 6)))
    return dict(
        lift=rng.uniform(0.12, 0.35, 2), power=rng.uniform(1.3, 2.3, 2), sweep=rng.uniform(-0.05, 0.08),
        notch=(rng.uniform(0.05, 0.14), rng.uniform(0.025, 0.07)),
        chord=(rng.uniform(0.32, 0.46), rng.uniform(1.5, 2.6), rng.uniform(0.45, 0.8)),
        stem=(rng.uniform(0.11, 0.17), rng.uniform(0.45, 0.65)),
        teeth=np.column_stack([rng.uniform(-1, 1, n_teeth), rng.uniform(0.01, 0.06, n_teeth),
                               rng.uniform(0.01, 0.05, n_teeth) * rng.choice([-1, 1], n_teeth)]),
        ripple=np.column_stack([rng.uniform(12, 45, n_ripple), rng.uniform(0.002, 0.01, n_ripple),
                                rng.uniform(0, 2 * np.pi, n_ripple)]),
        bites=np.column_stack([rng.uniform(-0.9, 0.9, 3), rng.uniform(0.03, 0.09, 3),
                               rng.uniform(0.03, 0.1, 3)])[: int(rng.integers(0, 4))],
        clip=(rng.choice([-1, 1]) * rng.uniform(0.82, 0.95)) if rng.random() < 0.25 else 0.0,
        blobs=np.vstack([blobs, mirror]), white=rng.beta(1.3, 1.3), border=rng.uniform(0.01, 0.04),
        dark=rng.uniform(0.04, 0.14), light=rng.uniform(0.72, 0.95),
        spots=np.column_stack([rng.uniform(-0.9, 0.9, n_spots), rng.uniform(-0.1, 0.3, n_spots),
                               rng.uniform(0.006, 0.025, n_spots), rng.random(n_spots) < 0.5]),
        scars=[(rng.uniform(-0.9, 0.9, 3), rng.uniform(-0.15, 0.3, 3), rng.uniform(0.004, 0.012))
               for _ in range(n_scars)],
    )


def trailing_edge(ind: dict, u: np.ndarray, jagged: bool = True) -> np.ndarray:
    """v of the trailing (upper) edge at u: lifted tips, central notch, and the jags."""
    side = (u > 0).astype(int)
    au = np.minimum(np.abs(u), 1.0)
    v = -ind["lift"][side] * au ** ind["power"][side] - ind["sweep"] * np.sin(np.pi * au)
    v += ind["notch"][0] * np.exp(-(u / ind["notch"][1]) ** 2)
    if not jagged:
        return v
    for c, w, a in ind["teeth"]:
        v -= a * np.clip(1 - np.abs(u - c) / w, 0, None)
    for f, a, p in ind["ripple"]:
        v += a * np.sin(f * u + p)
    for c, w, d in ind["bites"]:
        v += d * np.sqrt(np.clip(1 - ((u - c) / w) ** 2, 0, None))
    return v


def draw_texture(ind: dict, width: int) -> np.ndarray:
    """Render one fluke on the canonical canvas: float32 (Hc, Wc, 2) = grey level, alpha."""
    wc = int(round(width * 1.1))
    hc = int(round(wc * (V_RANGE[1] - V_RANGE[0]) / (U_RANGE[1] - U_RANGE[0])))
    ppu = wc / (U_RANGE[1] - U_RANGE[0])
    u = np.linspace(*U_RANGE, wc, dtype=np.float32)
    v = np.linspace(*V_RANGE, hc, dtype=np.float32)[:, None]
    top = trailing_edge(ind, u)
    chord, q, r = ind["chord"]
    smooth = trailing_edge(ind, u, jagged=False)
    bottom = smooth + chord * np.clip(1 - np.minimum(np.abs(u), 1) ** q, 0, None) ** r
    bottom[np.abs(u) > 1] = -9.0
    if ind["clip"]:
        bottom[u * np.sign(ind["clip"]) > abs(ind["clip"])] = -9.0
    sw, sb = ind["stem"]
    au = np.abs(u)
    flare = np.clip((sw - au) / (sw * (1 - sb)), 0, 1) ** 0.5
    stem = smooth[wc // 2] + chord + (V_RANGE[1] - smooth[wc // 2] - chord) * flare
    bottom = np.maximum(bottom, np.where(au < sw, stem, -9.0))
    alpha = np.clip((v - top) * ppu + 0.5, 0, 1) * np.clip((bottom - v) * ppu + 0.5, 0, 1)
    alpha *= np.clip((0.55 - v) / 0.25, 0, 1)  # the stem fades into the water
    field = np.zeros_like(alpha)
    for bu, bv, s, w in ind["blobs"]:
        field += w * np.exp(-((u - bu) ** 2 + (v - bv) ** 2) / (2 * s * s))
    inside = field[alpha > 0.5]
    thr = np.quantile(inside, 1 - ind["white"]) if inside.size else 0.0
    pig = 1 / (1 + np.exp(-(field - thr) / (0.08 * (inside.std() if inside.size else 1) + 1e-6)))
    pig *= np.clip((v - top - ind["border"]) / ind["border"], 0, 1)  # dark trailing-edge margin
    pig *= np.clip((smooth[wc // 2] + chord + 0.1 - v) / 0.15, 0.25, 1)  # a greyer stem
    pig = pig.astype(np.float32)

    def px(uu, vv):
        return np.stack([(uu - U_RANGE[0]) * ppu, (vv - V_RANGE[0]) * ppu], -1)

    for su, sv, sr, white in ind["spots"]:
        x, y = px(su, sv)
        cv2.circle(pig, (int(x), int(y)), max(1, int(sr * ppu)), float(white), -1, cv2.LINE_AA)
    for cu, cv_, th in ind["scars"]:
        t = np.linspace(0, 1, 12)[:, None]
        curve = (1 - t) ** 2 * px(cu[0], cv_[0]) + 2 * t * (1 - t) * px(cu[1], cv_[1]) + t ** 2 * px(cu[2], cv_[2])
        cv2.polylines(pig, [curve.astype(np.int32)], False, 1.0, max(1, int(round(th * ppu))), cv2.LINE_AA)
    grey = ind["dark"] + (ind["light"] - ind["dark"]) * np.clip(pig, 0, 1)
    return np.dstack([grey, alpha]).astype(np.float32)


def draw_sea(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Sea background: vertical gradient, wave streaks, fine chop, glints, maybe sky."""
    deep = (np.array([0.08, 0.18, 0.26]) * rng.uniform(0.6, 1.5) + rng.normal(0, 0.04, 3)).astype(np.float32)
    top = deep * np.float32(rng.uniform(1.1, 1.9))
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = top * (1 - t) + deep * t
    waves = cv2.resize(rng.normal(0, 1, (h // 4 + 2, w // 14 + 2)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    chop = cv2.resize(rng.normal(0, 1, (h // 2, w // 3)).astype(np.float32), (w, h),
                      interpolation=cv2.INTER_LINEAR)
    img = img + (np.float32(rng.uniform(0.02, 0.09)) * waves + np.float32(rng.uniform(0.005, 0.03)) * chop)[..., None]
    if rng.random() < 0.35:
        yh = int(rng.uniform(0.03, 0.3) * h)
        sky = np.array([0.6, 0.68, 0.78]) * rng.uniform(0.7, 1.2) + rng.normal(0, 0.05, 3)
        img[:yh] = sky * np.linspace(0.9, 1.05, yh)[:, None, None]
    glint = np.zeros((h, w), np.float32)
    for x, y in zip(rng.integers(0, w, 30), rng.integers(0, h, 30)):
        cv2.circle(glint, (int(x), int(y)), 0, float(rng.uniform(0.2, 0.7)), -1)
    return img + cv2.GaussianBlur(glint, (0, 0), 0.7)[..., None]


def draw_photo(ind: dict, tex: np.ndarray, rng: np.random.Generator, w: int, h: int,
           style: SynthStyle = SynthStyle(), extra: np.random.Generator | None = None) -> tuple[bytes, tuple[int, ...]]:
    """One random view of an individual: JPEG bytes and the fluke's box as a detector gives it.

    The box is the fluke's true extent, jittered by a few percent of its size the way
    a public fluke detector's boxes are off, and clamped to the frame. ``style``'s
    occluders and tint draw from ``extra``, so the default style's bytes never change.
    """
    ppu = tex.shape[1] / (U_RANGE[1] - U_RANGE[0])
    centre_c = np.array([-U_RANGE[0], 0.05 - V_RANGE[0]]) * ppu
    s = rng.uniform(*style.scale) * w / (2 * ppu)
    th = np.deg2rad(rng.uniform(-20, 20))
    centre = np.array([w * rng.uniform(0.35, 0.65), h * rng.uniform(0.33, 0.6)])
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    lin = rot @ np.array([[1, rng.normal(0, 0.08)], [0, 1]]) @ np.diag([s * rng.uniform(0.7, 1.0), s])
    hc, wc = tex.shape[:2]
    src = np.float32([[0, 0], [wc, 0], [wc, hc], [0, hc]])
    dst = (src - centre_c) @ lin.T + centre + rng.normal(0, 0.04 * w, (4, 2))
    homography = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(tex, homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    grey, alpha = warped[..., 0], warped[..., 1:]
    ys, xs = np.nonzero(alpha[..., 0] > 0.5)
    if len(xs):
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    else:  # the fluke left the frame: the whole image
        x0, y0, x1, y1 = 0, 0, w, h
    jitter = rng.normal(0, 0.03, 4) * np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    box = np.round(np.array([x0, y0, x1, y1]) + jitter).astype(int)
    box = (int(np.clip(box[0], 0, w - 2)), int(np.clip(box[1], 0, h - 2)),
           int(np.clip(box[2], box[0] + 2, w)), int(np.clip(box[3], box[1] + 2, h)))
    ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, :] * np.float32(rng.uniform(-0.2, 0.2))
    grey = np.clip(grey * np.float32(rng.uniform(0.65, 1.3)) + ramp, 0, 1) ** np.float32(rng.uniform(0.75, 1.4))
    tint = (1 + rng.normal(0, 0.03, 3)).astype(np.float32)
    fluke = grey[..., None] * tint + (rng.uniform(0, 0.06) * np.array([0.3, 0.6, 1])).astype(np.float32)
    img = draw_sea(rng, w, h) * (1 - alpha) + fluke * alpha

    spray = np.zeros((h, w), np.float32)
    base = cv2.perspectiveTransform(np.float32([[centre_c + [0, 0.4 * ppu]]]), homography)[0, 0]
    for _ in range(int(rng.integers(10, 50))):  # foam where the stem meets the water
        x, y = base + rng.normal(0, [0.1 * w, 0.025 * h])
        r = rng.uniform(0.005, 0.04) * w
        cv2.ellipse(spray, (int(x), int(y)), (int(r) + 1, int(r * rng.uniform(0.3, 0.7)) + 1), 0, 0, 360,
                    float(rng.uniform(0.3, 0.9)), -1)
    if rng.random() < 0.45:  # water running off the trailing edge
        uu = rng.uniform(-0.9, 0.9, int(rng.integers(3, 15)))
        pts = np.stack([uu - U_RANGE[0], trailing_edge(ind, uu) + 0.05 - V_RANGE[0]], -1) * ppu
        for x, y in cv2.perspectiveTransform(pts[None].astype(np.float32), homography)[0]:
            cv2.line(spray, (int(x), int(y)), (int(x + rng.normal(0, 2)), int(y + rng.uniform(0.05, 0.4) * h)),
                     float(rng.uniform(0.2, 0.6)), 1, cv2.LINE_AA)
    if rng.random() < 0.25:  # a burst of spray hiding part of a lobe
        cx, cy = centre + rng.normal(0, [0.25 * w, 0.1 * h])
        for _ in range(int(rng.integers(3, 10))):
            x, y = (cx, cy) + rng.normal(0, 0.05 * w, 2)
            cv2.circle(spray, (int(x), int(y)), int(rng.uniform(0.02, 0.07) * w), float(rng.uniform(0.4, 0.8)), -1)
    spray = cv2.GaussianBlur(spray, (0, 0), max(1.0, 0.01 * w))[..., None].clip(0, 1)
    img = img * (1 - spray) + spray * np.float32(rng.uniform(0.8, 1.0))
    if extra is not None and style.occlusion and extra.random() < style.occlusion:
        img = add_occluders(img, alpha[..., 0], extra)
    if extra is not None and style.tint:
        img = add_tint(img, style.tint, extra)

    cast = ((1 + rng.normal(0, 0.07, 3)) * rng.uniform(0.8, 1.2)).astype(np.float32)
    img = np.clip(img * cast, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))
    sigma = rng.uniform(0, 1.2) * w / 192
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.15:  # motion blur: a line kernel at a random angle
        k = np.zeros((7, 7), np.float32)
        cv2.line(k, (0, 3), (6, 3), 1.0)
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((3, 3), float(rng.uniform(0, 180)), 1), (7, 7))
        img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
    img = img + (rng.random(img.shape, dtype=np.float32) - 0.5) * np.float32(rng.uniform(0, 0.1))  # sensor noise
    if rng.random() < 0.15:
        img = np.repeat(cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        buf, "JPEG", quality=int(rng.integers(55, 96)))
    return buf.getvalue(), box
