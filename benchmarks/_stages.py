"""Shared by the training benchmarks: build F, D, C and G from a config and time one epoch of each stage."""
import resource, time
import torch
from tocoad.data import AnomalyDataset
from tocoad.runtime import Runtime
from tocoad.training import StageDataset, train_stage1, train_stage2, create_part

def peak_mb(rt):
    "Peak CUDA allocator memory on a GPU, else the process's peak resident memory, in MB."
    if rt.cuda: return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def time_stages(cfg, samples, rt=None):
    "One epoch of stage I and one of stage II on `samples`: yields (name, seconds, steps, last loss, peak MB)."
    rt = rt or Runtime(cfg.device, cfg.amp)
    F = create_part('F', cfg, rt=rt)  # the parts as train_tocoad builds them
    base = AnomalyDataset(samples, create_part('transform', cfg, F), normalize=False)
    D, head, gen = create_part('D', cfg, F, rt), create_part('C', cfg, F, rt), create_part('G', cfg)
    for name, fn in [('stage I', lambda: train_stage1(F, D, StageDataset(base, gen, 0, 0), cfg, rt, progress=False)),
                     ('stage II', lambda: train_stage2(F, D, head, StageDataset(base, gen, cfg.views, 1), cfg, rt, progress=False))]:
        if rt.cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); hist = fn()
        if rt.cuda: torch.cuda.synchronize()
        yield name, time.perf_counter() - t, len(hist), hist[-1]['loss'], peak_mb(rt)
