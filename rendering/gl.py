"""Choosing the headless OpenGL platform (EGL or OSMesa) before PyOpenGL loads.

PyOpenGL binds its platform once, when ``OpenGL`` is first imported, from PYOPENGL_PLATFORM. So
the choice is process-wide and must be made before pyrender is imported: nothing in this
package imports pyrender until ``select_platform`` has run. The first choice wins: a value the
user already exported (or a platform OpenGL already loaded) is respected, with a warning when
it differs from the one asked for.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

PLATFORMS = ("egl", "osmesa")
_ENV = "PYOPENGL_PLATFORM"


class GLPlatformUnavailable(RuntimeError):
    """No offscreen OpenGL context can be made with the platform in force."""


def select_platform(requested: str) -> str:
    """Settle PYOPENGL_PLATFORM for this process and return the platform actually in force."""
    if requested not in PLATFORMS:
        raise ValueError(f"unknown OpenGL platform {requested!r}; expected one of {PLATFORMS}")
    in_force = _platform_in_force()
    if in_force is None:
        os.environ[_ENV] = requested
        return requested
    if in_force not in PLATFORMS:
        raise GLPlatformUnavailable(
            f"OpenGL platform {in_force!r} is already in force in this process (PYOPENGL_PLATFORM "
            f"or an earlier OpenGL import); headless rendering needs one of {PLATFORMS}: set "
            f"PYOPENGL_PLATFORM=egl (or osmesa) before anything imports OpenGL"
        )
    if in_force != requested:
        warnings.warn(
            f"rendering with OpenGL platform {in_force!r}, already in force in this process, "
            f"instead of the requested {requested!r} (PyOpenGL cannot switch once loaded)",
            RuntimeWarning,
            stacklevel=3,
        )
    os.environ[_ENV] = in_force
    return in_force


def ensure_platform() -> str:
    """Settle the platform before a module imports pyrender: the one in force, else EGL."""
    in_force = _platform_in_force()
    return select_platform(in_force if in_force in PLATFORMS else "egl")


def _platform_in_force() -> str | None:
    return _loaded_platform() or (os.environ.get(_ENV) or "").strip().lower() or None


def _loaded_platform() -> str | None:
    """Platform PyOpenGL has already bound in this process, or None if it has not loaded yet."""
    platform_module = sys.modules.get("OpenGL.platform")
    bound = getattr(platform_module, "PLATFORM", None)
    if bound is None:
        return None
    name = type(bound).__name__.lower()
    for known in PLATFORMS:
        if name.startswith(known):
            return known
    return name.removesuffix("platform")


def import_pyrender(platform: str):
    """pyrender, imported once ``platform`` is settled.

    Importing pyrender imports OpenGL, which loads the platform's shared library (libEGL or
    libOSMesa) there and then: a missing library surfaces here as PyOpenGL's plain ImportError or
    an OSError, and becomes GLPlatformUnavailable with the package to install.
    """
    load_triton_before_mesa()
    try:
        import pyrender
    except ModuleNotFoundError:
        raise
    except (ImportError, OSError) as exc:
        raise context_error(platform, exc) from exc
    return pyrender


def load_triton_before_mesa() -> None:
    """Load triton (torch's kernel compiler, present with CUDA builds of torch) if installed.

    Mesa's llvmpipe and triton each bring their own LLVM, and a process that loads triton's
    second dies with a segmentation fault: a process that renders and later imports
    torch._dynamo (open_clip, torchvision, torch.compile all do) would crash. Loaded first
    (about 0.1 s), both work.
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def context_error(platform: str, cause: BaseException) -> GLPlatformUnavailable:
    """A GLPlatformUnavailable that names ``platform`` and the Debian packages it needs."""
    remedy = {
        "egl": "install Mesa's EGL (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) or a GPU driver with EGL",
        "osmesa": "install OSMesa (Debian: libosmesa6) and PyOpenGL>=3.1.5 (pyrender 0.1.45 pins "
        "PyOpenGL 3.1.0, which lacks OSMesaCreateContextAttribs)",
    }[platform]
    return GLPlatformUnavailable(
        f"cannot create an offscreen OpenGL context with platform {platform!r}: "
        f"{type(cause).__name__}: {cause}. To fix: {remedy}, or choose the other platform."
    )


def set_multisampling(offscreen, samples: int) -> None:
    """Give a pyrender OffscreenRenderer ``samples``-fold MSAA (0 = none) instead of its fixed 4.

    pyrender hard-codes 4x MSAA. On a software rasteriser (Mesa llvmpipe) that makes every view
    about 2.5-3x slower (measured in benchmarks/bench_render.py), so the renderer lets users
    choose. This builds pyrender's framebuffers now and re-specifies the storage of its two
    multisample renderbuffers; only this renderer's context is touched.
    """
    from OpenGL.GL import (
        GL_DEPTH_COMPONENT24,
        GL_RENDERBUFFER,
        GL_RGBA,
        glBindRenderbuffer,
        glRenderbufferStorageMultisample,
    )

    offscreen._platform.make_current()
    core = offscreen._renderer
    core._configure_main_framebuffer()
    for buffer, storage in ((core._main_cb_ms, GL_RGBA), (core._main_db_ms, GL_DEPTH_COMPONENT24)):
        glBindRenderbuffer(GL_RENDERBUFFER, buffer)
        glRenderbufferStorageMultisample(GL_RENDERBUFFER, samples, storage, *core._main_fb_dims)


def release_offscreen(offscreen) -> None:
    """Free one pyrender OffscreenRenderer's GL context and resources; safe to call twice.

    pyrender's own ``delete()`` ends with ``eglTerminate`` on the EGL display, which every EGL
    context in the process shares: closing one renderer would kill all others still in use.
    For EGL this destroys only this renderer's context and leaves the display initialised.
    """
    platform = getattr(offscreen, "_platform", None)
    if platform is None:
        return
    if type(platform).__name__ != "EGLPlatform":
        offscreen.delete()
        return
    from OpenGL.EGL import eglDestroyContext

    platform.make_current()
    offscreen._renderer.delete()
    eglDestroyContext(platform._egl_display, platform._egl_context)
    # pyrender's __del__ calls delete() again; with no platform left it has nothing to free.
    offscreen._renderer = None
    offscreen._platform = None
