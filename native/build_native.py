"""cffi (API mode) build of the Hyperplane engine into `dataplane._native`.

The declarations handed to cffi are read from the public headers (HEADERS), between
their `cffi:begin` and `cffi:end` markers, so each header is the one place its API is
written. Warnings are errors. VPCLAB_SANITIZE=1 builds with ASan and UBSan (used by
`make sanitize`; load the result with libasan preloaded).
"""
import os
import pathlib

from cffi import FFI

NATIVE = pathlib.Path(__file__).resolve().parent
SOURCES = sorted(str(p.relative_to(NATIVE.parent)) for p in NATIVE.glob("hp_*.c"))


HEADERS = ["hp_engine.h", "hp_io.h"]


def _cdef_from_headers() -> str:
    parts = []
    for name in HEADERS:
        text = (NATIVE / name).read_text()
        begin = text.index("/* cffi:begin */") + len("/* cffi:begin */")
        parts.append(text[begin:text.index("/* cffi:end */")])
    return "\n".join(parts)


def _flags() -> tuple[list[str], list[str]]:
    # Hidden visibility and LTO let the engine's files call each other directly (no PLT)
    # and inline across files: parsing, lookup and rewrite become one loop body.
    compile_args = ["-O2", "-g", "-std=gnu11", "-Wall", "-Wextra", "-Werror",
                    "-Wno-unused-parameter", "-fno-strict-aliasing", "-fvisibility=hidden",
                    "-flto=auto", "-fno-plt"]
    link_args: list[str] = ["-flto=auto", "-O2", "-pthread"]
    if os.environ.get("VPCLAB_SANITIZE") == "1":
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-fno-omit-frame-pointer"]
        compile_args = [a for a in compile_args if a not in ("-O2", "-flto=auto")] + ["-O1"] + san
        link_args = san + ["-pthread"]
        compile_args.append('-DHP_BUILD_INFO="asan,ubsan"')
    else:
        compile_args.append('-DHP_BUILD_INFO="release"')
    # cffi's generated glue is compiled with the same flags; its own code has a few
    # unused-parameter and sign-compare spots we can't change.
    compile_args += ["-Wno-unused-function"]
    return compile_args, link_args


ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_headers())
_compile, _link = _flags()
ffibuilder.set_source(
    "dataplane._native",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=SOURCES,
    include_dirs=[str(NATIVE)],
    extra_compile_args=_compile,
    extra_link_args=_link,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
