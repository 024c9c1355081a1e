__version__ = "0.1.0"

# `from tocoad import ToCoAD, preset`: resolved on first use, so `import tocoad` (and `tocoad --help`) stays free of torch
_LAZY = {'ToCoAD': 'model', 'preset': 'core', 'ToCoADConfig': 'core', 'TocoadError': 'core', 'load_samples': 'data', 'make_toy_dataset': 'data', 'export_onnx': 'export'}

def __getattr__(name):
    if name not in _LAZY: raise AttributeError(f"module 'tocoad' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f'.{_LAZY[name]}', __name__), name)

def __dir__(): return sorted([*globals(), *_LAZY])
