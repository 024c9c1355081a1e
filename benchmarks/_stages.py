"""Shared by the training benchmarks: build F, D, C and G from a config and time one epoch of each stage."""
import resource, time
import torch
from tocoad.core import seed_everything, LAYERS
from tocoad.data import AnomalyDataset, ImageTransform
from tocoad.backbone import FeatureExtractor
from tocoad.discriminator import DiscriminativeNetwork
from tocoad.contrastive import ContrastiveHead
from tocoad.training import Runtime, StageDataset, train_stage1, train_stage2, generator_from_config

def peak_mb(rt):
    "Peak CUDA allocator memory on a GPU, else the process's peak resident memory, in MB."
    if rt.cuda: return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def time_stages(cfg, samples, rt=None):
    "One epoch of stage I and one of stage II on `samples`: yields (name, seconds, steps, last loss, peak MB)."
    rt = rt or Runtime(cfg.device, cfg.amp); seed_everything(0)
    F = rt.prepare(FeatureExtractor(cfg.backbone, cfg.weights, LAYERS))
    base = AnomalyDataset(samples, ImageTransform(cfg.image_size, cfg.resize, cfg.crop, F.mean, F.std), normalize=False)
    D = rt.prepare(DiscriminativeNetwork(F.channels, cfg.decoder_width))
    head = rt.prepare(ContrastiveHead(F.channels, cfg.cl_layers, cfg.cl_concat, cfg.proj_dim, cfg.pred_layers))
    gen = generator_from_config(cfg)
    for name, fn in [('stage I', lambda: train_stage1(F, D, StageDataset(base, gen, 0, 0), cfg, rt, progress=False)),
                     ('stage II', lambda: train_stage2(F, D, head, StageDataset(base, gen, cfg.views, 1), cfg, rt, progress=False))]:
        if rt.cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); hist = fn()
        if rt.cuda: torch.cuda.synchronize()
        yield name, time.perf_counter() - t, len(hist), hist[-1]['loss'], peak_mb(rt)
