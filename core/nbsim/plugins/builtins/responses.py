"""The built-in detector responses (``specs/responses.md`` gives each formula and unit).

Point-spread functions are pixel-integrated (the light of a pixel's centre spread over the
neighbouring pixels by the integral of the PSF over each), normalised to conserve the total,
and applied by FFT convolution of each whole panel (zero beyond its edges: light that falls
off a panel is lost). ``read-out noise`` lives in its own package (``plugins/response-readout``),
the template for a facility's response.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import attrs
import numpy as np
import torch
from torch import Tensor

from nbsim.physics.counter_random import CounterRandom
from nbsim.plugins.hookspecs import hookimpl
from nbsim.plugins.response_base import Response
from nbsim.protocols import ResponseContext

#: sigma of a Gaussian of FWHM 1
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
#: g of the fiber PSF (g^2 + r^2)^(-3/2) of FWHM 1: half height at r = g sqrt(2^(2/3) - 1)
FWHM_TO_FIBER_G = 1.0 / (2.0 * math.sqrt(2.0 ** (2.0 / 3.0) - 1.0))


def pixel_integrated_kernel(cumulative, radius: int, pixel: float, *, dtype, device) -> Tensor:
    """(2r+1, 2r+1) integrals of a PSF over the pixels around a centre pixel, normalised to 1:
    ``cumulative(x, y)`` is the integral of the PSF over (-inf, x] x (-inf, y] (or any function
    whose mixed difference over a rectangle is its integral), x and y in metres."""
    edges = (torch.arange(-radius, radius + 2, dtype=torch.float64) - 0.5) * pixel
    F = cumulative(edges[:, None], edges[None, :])
    kernel = F[1:, 1:] - F[:-1, 1:] - F[1:, :-1] + F[:-1, :-1]
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def fast_fft_length(n: int) -> int:
    """The smallest length >= ``n`` with no prime factor above 7 (FFT libraries are fastest on
    those: 4104 = 2^3 3^3 19 took 35% longer than 4116 = 2^2 3 7^3)."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@functools.lru_cache(maxsize=4)
def _kernel_spectrum(response, pixel: float, size: tuple[int, int], dtype, device) -> Tensor:
    """The kernel's real FFT at ``size``: a table, kept for the next image."""
    return torch.fft.rfft2(response.kernel(pixel, dtype=dtype, device=device), s=size)


def convolve_panels(image: Tensor, response, pixel_sizes: list[float]) -> Tensor:
    """Each (S, F) panel of ``image`` convolved with ``response``'s kernel for its pixel size by
    FFT, the same size out (a linear convolution: zero beyond the panel).  A circular
    convolution of length >= S + r (F + r) leaves the S (F) values centred on the kernel free
    of wrapped-round terms, r being the kernel's radius (and the kernel must fit: >= 2r + 1)."""
    out = []
    for panel, pixel in zip(image, pixel_sizes):
        r = response.radius_for(pixel)
        size = tuple(fast_fft_length(max(n + r, 2 * r + 1)) for n in panel.shape)
        spectrum = _kernel_spectrum(response, pixel, size, image.dtype, image.device)
        full = torch.fft.irfft2(torch.fft.rfft2(panel, s=size) * spectrum, s=size)
        out.append(full[r:r + panel.shape[0], r:r + panel.shape[1]])
    return torch.stack(out) if len(out) > 1 else out[0].unsqueeze(0)  # one panel: no copy


class _PointSpread(Response):
    """A pixel-integrated, normalised PSF of FWHM ``fwhm`` µm, out to ``radius`` pixels."""

    conserves_total: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("fwhm",)
    default_reach: ClassVar[float] = 4.0  # FWHMs: the default radius

    def check(self) -> None:
        if not self.fwhm > 0:
            raise ValueError(f"fwhm must be positive (µm), got {self.fwhm:g}")
        if self.radius is not None and self.radius < 1:
            raise ValueError(f"radius must be at least 1 pixel, got {self.radius}")

    def radius_for(self, pixel: float) -> int:
        """The kernel's radius in pixels of ``pixel`` metres."""
        return self.radius or max(1, math.ceil(self.default_reach * self.fwhm * 1e-6 / pixel))

    def kernel(self, pixel: float, *, dtype, device) -> Tensor:
        return pixel_integrated_kernel(self.cumulative(self.fwhm * 1e-6), self.radius_for(pixel), pixel,
                                       dtype=dtype, device=device)

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        # the kernels are tables, not functions of the image
        return convolve_panels(image, self, context.pixel_size.tolist())


@attrs.frozen
class GaussianPSF(_PointSpread):
    """exp(-r^2 / 2 sigma^2) / (2 pi sigma^2), sigma = FWHM / (2 sqrt(2 ln 2))."""

    name: ClassVar[str] = "psf-gauss"
    default_reach: ClassVar[float] = 2.0  # 4.7 sigma
    fwhm: float | None = None  # µm
    radius: int | None = None  # pixels

    def cumulative(self, fwhm: float):
        sigma = fwhm * FWHM_TO_SIGMA

        def phi(x):
            return 0.5 * (1.0 + torch.erf(x / (sigma * math.sqrt(2.0))))

        return lambda x, y: phi(x) * phi(y)


@attrs.frozen
class FiberPSF(_PointSpread):
    """The fiber-optic taper PSF of CCTBX simtbx: g / (2 pi (g^2 + r^2)^(3/2)),
    g = FWHM / (2 sqrt(2^(2/3) - 1)); its integral over (0, x) x (0, y) is
    atan(x y / (g sqrt(g^2 + x^2 + y^2))) / (2 pi)."""

    name: ClassVar[str] = "psf-fiber"
    default_reach: ClassVar[float] = 10.0  # the tails fall as r^-3: 2% of the light beyond 10 FWHM
    fwhm: float | None = None  # µm
    radius: int | None = None  # pixels

    def cumulative(self, fwhm: float):
        g = fwhm * FWHM_TO_FIBER_G
        return lambda x, y: torch.atan(x * y / (g * torch.sqrt(g * g + x * x + y * y))) / (2.0 * math.pi)


@attrs.frozen
class Gain(Response):
    """ADUs = photons x ``adu_per_photon``."""

    name: ClassVar[str] = "gain"
    adu_per_photon: float = 1.0

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        return image * self.adu_per_photon


@attrs.frozen
class Pedestal(Response):
    """The ADC offset: every pixel + ``adu`` (nanoBragg's ``-adc``)."""

    name: ClassVar[str] = "pedestal"
    adu: float = 40.0

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        return image + self.adu


@attrs.frozen
class Calibration(Response):
    """A fixed error of each pixel's gain: x (1 + ``percent``/100 g), g standard normal drawn
    from ``seed`` alone (a property of the detector: the same in every image)."""

    name: ClassVar[str] = "calibration"
    required: ClassVar[tuple[str, ...]] = ("percent",)
    percent: float | None = None
    seed: int = 1

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        g = _fixed_normals(self.seed, tuple(image.shape), image.dtype, image.device)
        return torch.addcmul(image, image, g, value=self.percent / 100.0)


@functools.lru_cache(maxsize=2)
def _fixed_normals(seed: int, shape: tuple[int, ...], dtype, device) -> Tensor:
    """A detector's fixed per-pixel deviates: drawn once, kept for the next image."""
    return CounterRandom(seed).normal(shape, dtype=dtype, device=device)


@attrs.frozen
class Flicker(Response):
    """Flicker noise: x (1 + ``percent``/100 g) with g standard normal, new in every image."""

    name: ClassVar[str] = "flicker"
    random: ClassVar[bool] = True
    required: ClassVar[tuple[str, ...]] = ("percent",)
    percent: float | None = None
    seed: int | None = None

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        g = context.random.normal(image.shape, dtype=image.dtype, device=image.device)
        return torch.addcmul(image, image, g, value=self.percent / 100.0)


@attrs.frozen
class Poisson(Response):
    """Photon counting: a Poisson deviate of every pixel's mean. ``rng=c`` (the default) is the
    reference program's generator with the run's ``-seed``, continuing after its misset and
    mosaic draws, as its noise image (the same values for a seed; serial); ``rng=parallel``
    draws from the step's counter-based generator (each pixel's deviate a function of the seed
    and the pixel: parallel, and the same whatever the chunking)."""

    name: ClassVar[str] = "poisson"
    differentiable: ClassVar[bool] = False
    random: ClassVar[bool] = True
    rng: str = "c"
    seed: int | None = None

    def check(self) -> None:
        if self.rng not in ("c", "parallel"):
            raise ValueError(f"rng must be c or parallel, got {self.rng!r}")

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        if self.rng == "parallel":
            return context.random.poisson(image.detach())
        # the reference's stream over the ROI, in order (imported here: outputs sit above plugins)
        from nbsim.outputs.noise import noise_counts

        means = image.detach().cpu().numpy().astype(np.float32).reshape(context.config.detector.image_shape)
        counts = noise_counts(means, context.config, method="c")
        return torch.from_numpy(counts).reshape(image.shape).to(dtype=image.dtype, device=image.device)


@attrs.frozen
class Saturation(Response):
    """min(value, ``max``): a pixel can record no more; those above are counted as overloads."""

    name: ClassVar[str] = "saturation"
    max: float = 65535.0

    def apply(self, image: Tensor, context: ResponseContext) -> Tensor:
        over = int(torch.count_nonzero(image > self.max))  # a count for the user, not part of the value
        if over:
            context.notes.append(f"saturation: {over} pixels above {self.max:g} ADU (overloads)")
        return torch.clamp(image, max=self.max)


BUILTIN_RESPONSES = (GaussianPSF(), FiberPSF(), Gain(), Pedestal(), Calibration(), Flicker(), Poisson(), Saturation())


class BuiltinResponsePlugin:
    """Registers the built-in detector responses."""

    @hookimpl
    def nbsim_register_detector_responses(self, register):
        for response in BUILTIN_RESPONSES:
            register(response)
