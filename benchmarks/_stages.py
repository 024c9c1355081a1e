"""Shared by the training benchmarks: one epoch of each stage, with the parts `train_tocoad` builds (`stage_parts`)."""
import resource, time
import torch
from tocoad.training import stage_parts, train_stage1, train_stage2

def peak_mb(rt):
    "Peak CUDA allocator memory on a GPU, else the process's peak resident memory, in MB."
    if rt.cuda: return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def time_stages(cfg, samples, rt=None):
    "One epoch of stage I and one of stage II on `samples`: yields (name, seconds, steps, last loss, peak MB)."
    p = stage_parts(cfg.replace(stages='dnp+ncl', stage1_epochs=1, stage2_epochs=1), samples, runtime=rt); rt = p.runtime
    for name, fn in [('stage I', lambda: train_stage1(p.F, p.D, dataset=p.stage1, cfg=cfg, rt=rt, progress=False)),
                     ('stage II', lambda: train_stage2(p.F, p.D, C=p.C, dataset=p.stage2, cfg=cfg, rt=rt, progress=False))]:
        if rt.cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); hist = fn()
        if rt.cuda: torch.cuda.synchronize()
        yield name, time.perf_counter() - t, len(hist), hist[-1]['loss'], peak_mb(rt)
