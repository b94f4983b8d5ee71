"""What a benchmark figure was measured on: the CPU model and its widest SIMD."""
import platform


def _cpuinfo(key):
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name():
    """The CPU model ("Intel(R) Xeon(R) Processor"), or the platform's name for it."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def simd():
    """"AVX-512", "AVX2", or "no AVX2" (x86_64), from the CPU flags; "?" elsewhere."""
    flags = (_cpuinfo("flags") or "").split()
    if not flags:
        return "?"
    return "AVX-512" if "avx512bw" in flags else "AVX2" if "avx2" in flags else "no AVX2"
