"""Stage I and stage II steps split the way bench_predict.py splits prediction, beside the bare forward + backward of F, in one run.

Issue 21: how far are the stages from the networks they train? Each step of the real step functions
(`training.dnp_step`, `training.ncl_step`, through `training.accumulate` in the configured micro-batches) is cut into:
data and generator (the loader: G's anomalies, stage II's augmented views), F forward, C forward (with L_sym), D
forward (with its loss), backward (everything the step back-propagates), optimizer. Forward times come from hooks on
F, C and D; backward is the rest of `accumulate`. The limit is the bare forward + backward of F on the same images at
the same size in the same micro-batches (stage I: the batch; stage II: its M views and anomalies), and for stage I
also F's bare forward (F is frozen there). Medians over `--steps` steps after one warm-up step; stage I without the
feature pool (`stage1_pool=0`), so F's forward is in it. Writes results/train_steps.json (`--no-write`: print only).
Usage: python benchmarks/bench_train_steps.py [--texture runs/texture640] [--size 640 256] [--steps 3] [--threads 2]
"""
import argparse, os, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch

class Clock:
    "Seconds spent in each named module's forward, by forward hooks (synchronous on the CPU; synchronised on CUDA)."
    def __init__(self, cuda:bool): self.cuda, self.spent, self._t = cuda, {}, {}
    def watch(self, name, m):
        def pre(*_):
            if self.cuda: torch.cuda.synchronize()
            self._t[name] = time.perf_counter()
        def post(*_):
            if self.cuda: torch.cuda.synchronize()
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - self._t[name]
        m.register_forward_pre_hook(pre); m.register_forward_hook(post)

def _now(cuda):
    if cuda: torch.cuda.synchronize()
    return time.perf_counter()

def split_steps(cfg, samples, steps:int=3)->dict:
    "{'stage I': {part: median seconds per step}, 'stage II': ..., 'limit ...': ...} for `cfg` on `samples` (at least one batch)."
    from tocoad.core import hw
    from tocoad.training import stage_parts, dnp_step, ncl_step, accumulate, micro_batch_size, FineTuned, set_batchnorm, split_batch
    p = stage_parts(cfg.replace(stages='dnp+ncl', stage1_epochs=1, stage2_epochs=1, stage1_pool=0), samples); rt = p.runtime; cuda = rt.cuda
    micro = micro_batch_size(cfg, rt.device); B = min(cfg.batch_size, len(samples)); out = {}
    clock = Clock(cuda)
    for name, m in (('F forward', p.F), ('C forward (+ L_sym)', p.C), ('D forward (+ its loss)', p.D)): clock.watch(name, m)
    def run(stage, step, params, opt, dataset):
        rows = []
        it = iter(rt.train_loader(dataset, batch_size=B, num_workers=cfg.num_workers, seed=cfg.seed, epoch=0))
        for k in range(steps + 1):
            if k and k % max(1, len(dataset) // B) == 0: it = iter(rt.train_loader(dataset, batch_size=B, num_workers=cfg.num_workers, seed=cfg.seed, epoch=k))
            t0 = _now(cuda); batch = next(it); t1 = _now(cuda); clock.spent.clear()
            opt.zero_grad(set_to_none=True); accumulate(step, batch, micro=micro); t2 = _now(cuda); opt.step(); t3 = _now(cuda)
            fw = dict(clock.spent); row = {'data + generator': t1 - t0, **fw, 'backward': (t2 - t1) - sum(fw.values()), 'optimizer': t3 - t2, 'step': t3 - t0}
            if k: rows.append(row)  # the first step warms up
        return {key: statistics.median(r.get(key, 0.0) for r in rows) for key in rows[0]}
    F, D, C = p.F, p.D, p.C
    F.eval().requires_grad_(False); D.train().requires_grad_(True)
    out['stage I'] = run(1, dnp_step(F, D, cfg=cfg, rt=rt), list(D.parameters()), torch.optim.Adam(D.parameters(), lr=cfg.stage1_lr), p.stage1)
    F.requires_grad_(True); C.requires_grad_(True); set_batchnorm(F.train(), cfg.stage2_bn); D.eval().requires_grad_(False)
    wrapped = FineTuned(F, C)
    params = [*F.parameters(), *C.parameters()]
    out['stage II'] = run(2, ncl_step(wrapped, D, target=None, cfg=cfg, rt=rt), params, torch.optim.SGD(params, lr=cfg.stage2_lr, momentum=cfg.momentum), p.stage2)
    H, W = hw(cfg.image_size)
    def bare(n_images, backward):
        xs = rt.to(torch.randn(n_images, 3, H, W))
        ts = []
        for k in range(steps + 1):
            t = _now(cuda)
            for part in split_batch({'x': xs}, micro if backward else n_images):
                if backward:
                    F.zero_grad(set_to_none=True); f = F(part['x']); sum(v.float().mean() for v in f.values()).backward()
                else:
                    with torch.no_grad(): F(part['x'])
            if k: ts.append(_now(cuda) - t)
        return statistics.median(ts)
    F.eval()  # the bare passes: batch norm as in stage I (frozen), no hooks' bookkeeping matters (F's hook still runs: a few microseconds)
    out['limit: F forward, stage I images'] = {'step': bare(B, backward=False)}
    out['limit: F forward + backward, stage I images'] = {'step': bare(B, backward=True)}
    F.train(); out['limit: F forward + backward, stage II images'] = {'step': bare(B * (cfg.views + 1), backward=True)}
    return dict(images_per_step=B, micro=micro, views=cfg.views, parts=out)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--texture', default='/tmp/tocoad_bench_texture/split', help='folder of the synthetic texture (written there if missing)')
    ap.add_argument('--size', type=int, nargs=2, default=[256, 256], metavar=('H', 'W')); ap.add_argument('--preset', default='cpu')
    ap.add_argument('--steps', type=int, default=3); ap.add_argument('--threads', type=int, default=2); ap.add_argument('--micro', type=int, default=0)
    ap.add_argument('--device', default='cpu'); ap.add_argument('--no-write', action='store_true')
    a = ap.parse_args(); torch.set_num_threads(a.threads)
    from bench_predict import texture_data
    from tocoad.core import preset
    from tocoad.data import load_samples
    H, W = a.size; cfg = preset(a.preset, image_size=(H, W), resize=(H, W), crop=False, micro_batch=a.micro, val_holdout=0.0, device=a.device)
    samples = load_samples(texture_data(Path(a.texture) / f'{H}x{W}', (H, W), train=cfg.batch_size * 2), 'texture')
    r = report(split_steps(cfg, samples, steps=a.steps), title=f'{a.preset} preset, {H}x{W}, {a.threads} threads, device {a.device}')
    if not a.no_write:
        from _results import write_result
        write_result(f'train_steps_{H}x{W}', dict(what=f'stage I and II steps split by part, beside the bare forward + backward of F: {a.preset} preset, synthetic texture {H}x{W}, median of {a.steps} steps, {a.threads} threads', **r))

def report(r:dict, title:str)->dict:
    "Print the split and the ratios to the limit; returns `r` with the ratios and ms per part added."
    B = r['images_per_step']; parts = r['parts']
    print(f'{title}: batch {B}, micro-batches of {r["micro"]}, {r["views"]} views; ms per step (median)')
    for stage, d in parts.items():
        print(f'  {stage}: ' + ', '.join(f'{k} {1000 * v:.0f}' for k, v in d.items() if k != 'step') + f'  | step {1000 * d["step"]:.0f} ms = {B / d["step"]:.2f} images/s')
    lim1, lim2 = parts['limit: F forward + backward, stage I images']['step'], parts['limit: F forward + backward, stage II images']['step']
    r['stage_I_over_limit'] = round(lim1 / parts['stage I']['step'], 3); r['stage_II_over_limit'] = round(lim2 / parts['stage II']['step'], 3)
    r['stage_I_over_forward'] = round(parts['limit: F forward, stage I images']['step'] / parts['stage I']['step'], 3)
    net = {s: sum(v for k, v in parts[s].items() if k not in ('data + generator', 'step')) / parts[s]['step'] for s in ('stage I', 'stage II')}
    r['networks_share'] = {s: round(v, 3) for s, v in net.items()}
    print(f"  stage I at {r['stage_I_over_limit']:.2f}x F's forward + backward of its images ({r['stage_I_over_forward']:.2f}x F's bare forward; F is frozen there); "
          f"stage II at {r['stage_II_over_limit']:.2f}x F's forward + backward of its views and anomalies (goal >= 0.5)")
    print(f"  the networks' own work (all but data + generator): stage I {net['stage I']:.0%}, stage II {net['stage II']:.0%} of the step")
    r['ms'] = {s: {k: round(1000 * v, 1) for k, v in d.items()} for s, d in parts.items()}; del r['parts']
    return r

if __name__ == '__main__': main()
