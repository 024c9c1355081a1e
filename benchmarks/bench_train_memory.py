"""Peak memory (RSS) and images/s of a `dnp+ncl` fit by input size and micro-batch, each configuration in its own process.

Issue 21: training memory grew with batch × image area (16 GB at 640 × 256). Here the `cpu` preset trains on one
batch of 16 synthetic uniform-texture images (shared/tools/make_texture.py) at each size: stage I on a pool of those
16 (the preset's path, F's features computed once), then one stage II step; the peak is set by one batch, not by
the data set. `--micro 0` is the automatic choice (`training.micro_batch_size`). Each configuration runs in a fresh
subprocess, so its peak resident memory (ru_maxrss) is its own; `rss_start_mb` is the peak before training (the
imports, F, D and C built). Writes results/train_memory.json.
Usage: python benchmarks/bench_train_memory.py [--sizes 256x256 640x256:4,2,0] [--micro 16 4 2 0] [--threads 2] [--checkpoint]
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

def rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def one(size:tuple, micro:int, images:int=16, preset_name:str='cpu', device:str='cpu', work:str='/tmp/tocoad_bench_texture', checkpoint:bool=False)->dict:
    "Train one batch per stage at `size` with `micro_batch=micro` in this process: peak memory (RSS, or CUDA's allocator on a GPU) and seconds per stage."
    import torch
    from bench_predict import texture_data
    from tocoad.core import preset
    from tocoad.data import load_samples
    from tocoad.training import micro_batch_size
    from _stages import time_stages
    H, W = size; root = texture_data(Path(work) / f'{H}x{W}', (H, W), train=images)
    cfg = preset(preset_name, image_size=(H, W), resize=(H, W), crop=False, micro_batch=micro, stage1_epochs=1, stage2_epochs=1,
                 stage1_pool=images, val_holdout=0.0, device=device, checkpoint_F=checkpoint)
    samples = load_samples(root, 'texture')[:images]
    out = dict(size=f'{H}x{W}', micro_batch=micro, checkpoint_F=checkpoint, micro_used=micro_batch_size(cfg, device=torch.device(device if device != 'auto' else 'cpu')),
               images=len(samples), batch=cfg.batch_size, threads=torch.get_num_threads(), rss_start_mb=round(rss_mb()))
    for name, dt, steps, loss, mb in time_stages(cfg, samples):
        key = name.replace(' ', '_').lower()
        out[f'{key}_s'], out[f'{key}_peak_mb'] = round(dt, 2), round(mb)
    out['stage_ii_images_per_s'] = round(len(samples) / out['stage_ii_s'], 2)
    out['peak_mb'] = round(max(out['stage_i_peak_mb'], out['stage_ii_peak_mb'])); out['peak_gb'] = round(out['peak_mb'] / 1024, 2)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', nargs='+', default=['256x256', '640x256']); ap.add_argument('--micro', type=int, nargs='+', default=[16, 4, 2, 0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--images', type=int, default=16)
    ap.add_argument('--checkpoint', action='store_true', help='also each configuration with checkpoint_F (activation checkpointing of F in stage II)')
    ap.add_argument('--one', nargs=2, metavar=('HxW', 'MICRO'), help=argparse.SUPPRESS)  # the child process
    ap.add_argument('--no-write', action='store_true', help='print only (a smoke run)')
    ap.add_argument('--append', action='store_true', help='keep the rows already in results/<name>.json (a row of the same size, micro_batch and checkpoint_F is replaced)')
    ap.add_argument('--name', default='train_memory', help='results/<name>.json'); ap.add_argument('--note', default='', help='a sentence kept in the result (what shared the machine)')
    a = ap.parse_args()
    if a.one:
        import torch; torch.set_num_threads(a.threads)
        H, W = map(int, a.one[0].split('x')); print('RESULT ' + json.dumps(one((H, W), int(a.one[1]), images=a.images, checkpoint=a.checkpoint))); return
    rows = []
    per_size = [(s.split(':')[0], [int(v) for v in s.split(':')[1].split(',')] if ':' in s else a.micro) for s in a.sizes]  # 'HxW:16,4,0': that size's own list
    for s, m, ck in [(s, m, ck) for s, ms in per_size for m in ms for ck in ([False, True] if a.checkpoint else [False])]:
        t = time.perf_counter()
        r = subprocess.run([sys.executable, __file__, '--one', s, str(m), '--threads', str(a.threads), '--images', str(a.images)] + (['--checkpoint'] if ck else []), capture_output=True, text=True)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith('RESULT ')]
        if r.returncode or not line: print(f'{s} micro {m}: failed\n{r.stderr[-1500:]}'); continue
        row = json.loads(line[0][7:]); rows.append(row)
        print(f"{s:>8} micro_batch {m:>2} (uses {row['micro_used']:>2}){', F checkpointed' if ck else ''}: peak RSS {row['peak_gb']:5.2f} GB (stage I {row['stage_i_peak_mb']} MB, "
              f"stage II {row['stage_ii_peak_mb']} MB, before training {row['rss_start_mb']} MB); stage II {row['stage_ii_images_per_s']:.2f} images/s "
              f"({time.perf_counter() - t:.0f} s in all)", flush=True)
    if rows and not a.no_write:
        from _results import write_result, read_result, RESULTS
        if a.append and (RESULTS / f'{a.name}.json').is_file():
            key = lambda r: (r['size'], r['micro_batch'], r.get('checkpoint_F', False))
            new = {key(r) for r in rows}; rows = [r for r in read_result(a.name)['rows'] if key(r) not in new] + rows
        write_result(a.name, dict(what=f'peak RSS of a dnp+ncl fit (cpu preset, one batch of {a.images} synthetic texture images per stage, stage I on a pool of them) by input size and micro_batch (0: automatic), each in its own process, {a.threads} threads',
                                  rows=rows, fit=per_image_fit(rows), **({'note': a.note} if a.note else {})))

def per_image_fit(rows:list)->dict:
    "Per input size, the least-squares line stage II peak (MB) = intercept + slope × images per micro-batch: what one more image in a micro-batch costs."
    import numpy as np
    out = {}
    for s in sorted({r['size'] for r in rows}):
        rs = [r for r in rows if r['size'] == s and not r.get('checkpoint_F')]
        if len({r['micro_used'] for r in rs}) < 2: continue
        slope, icept = np.polyfit([r['micro_used'] for r in rs], [r['stage_ii_peak_mb'] for r in rs], 1)
        H, W = map(int, s.split('x')); out[s] = dict(mb_per_image=round(float(slope), 1), intercept_mb=round(float(icept)), kb_per_pixel=round(float(slope) * 1024 / (H * W), 2))
    return out

if __name__ == '__main__': main()
