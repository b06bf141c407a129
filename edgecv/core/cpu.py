"""What the host CPU can do: its name and the instruction-set features that decide int8 and fp16 speed.

Torch-free. Linux reads ``/proc/cpuinfo``; macOS asks ``sysctl``; elsewhere only the architecture is known,
and the features read as absent.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# 8-bit dot products without saturation (Linux and macOS spellings)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx512vnni", "avxvnni"})
# native fp16 arithmetic (F16C only converts)
FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16", "avx512fp16", "asimdhp", "fphp"})


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's name, architecture and feature flags."""

    name: str
    arch: str  # platform.machine(): x86_64, aarch64, arm64, ...
    flags: frozenset[str]

    @property
    def x86(self) -> bool:
        return self.arch.lower() in ("x86_64", "amd64", "i386", "i686")

    @property
    def arm(self) -> bool:
        return self.arch.lower() in ("aarch64", "arm64") or self.arch.lower().startswith("armv")

    @property
    def vnni(self) -> bool:
        """x86 VNNI (AVX-512 VNNI, AVX-VNNI or AMX): uint8 x int8 dot products without 16-bit saturation."""
        return bool(self.flags & VNNI_FLAGS)

    @property
    def native_fp16(self) -> bool:
        """fp16 arithmetic in hardware (F16C only converts, so it does not count)."""
        return bool(self.flags & FP16_FLAGS)

    def describe(self) -> str:
        """A short line such as 'AMD EPYC (x86_64; AVX2, no VNNI, no native fp16)'."""
        parts = []
        if self.x86:
            best = next((f.upper() for f in ("avx512f", "avx2", "avx") if f in self.flags), "SSE")
            parts.append(best.replace("AVX512F", "AVX-512"))
        parts.append("VNNI" if self.vnni else "no VNNI")
        parts.append("native fp16" if self.native_fp16 else "no native fp16")
        return f"{self.name} ({self.arch}; {', '.join(parts)})"


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The model name and feature flags from Linux ``/proc/cpuinfo`` text (x86 'flags', ARM 'Features')."""
    name, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not name:
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return name, flags


def _sysctl(name: str) -> str:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


@lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """The CPU this process runs on (read once)."""
    arch = platform.machine() or "unknown"
    name, flags = "", frozenset()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            name, flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
        except OSError:
            pass
    elif platform.system() == "Darwin":
        name = _sysctl("machdep.cpu.brand_string")
        if arch == "arm64" and _sysctl("hw.optional.arm.FEAT_FP16") == "1":
            flags = frozenset({"asimdhp"})
        else:
            flags = frozenset(_sysctl("machdep.cpu.features").lower().split()
                              + _sysctl("machdep.cpu.leaf7_features").lower().split())
    return CpuInfo(name or platform.processor() or arch, arch, flags)
