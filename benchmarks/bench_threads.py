"""One training process alone, and two at once on the same machine, by torch's thread count (issue 21).

The workload is what a fit spends its time on: the `cpu` preset's F (offline tf_efficientnet_lite0), forward and
backward on batches of 4 images at 256 × 256, `--steps` steps after one warm-up. Each configuration runs in fresh
processes started together; each reports its own steps/s. `solo` is one process with the given threads; `pair`
two processes at once, each with the given threads, with OpenMP's default (spinning) wait policy or with
`OMP_WAIT_POLICY=PASSIVE`; `auto`: no thread count given, each process working within tocoad's `THREADS` share
(as fit does: re-counted between steps), alone and as a pair. Writes results/threads.json (`--no-write`: print only).
Usage: python benchmarks/bench_threads.py [--steps 8]
"""
import argparse, os, subprocess, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

def work(steps:int, share=None)->float:
    "Steps/s of F's forward + backward on batches of 4 at 256 × 256 in this process (with `share`: re-split between steps, as in a fit)."
    import torch
    from tocoad.core import preset
    from tocoad.parts import create_part
    cfg = preset('cpu'); F = create_part('F', cfg).train().requires_grad_(True)
    x = torch.randn(4, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    def step():
        if share is not None: share.rebalance()
        out = F(x); sum(v.float().pow(2).mean() for v in out.values()).backward()
    step(); t = time.perf_counter()
    for _ in range(steps): step()
    return steps / (time.perf_counter() - t)

def launch(n:int, threads:int|str, steps:int, passive:bool, folder:str)->list:
    "Start `n` processes at once, each with `threads` torch threads ('auto': tocoad's share, through `folder`); their steps/s."
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'} | ({'OMP_NUM_THREADS': str(threads)} if threads != 'auto' else {}) | ({'OMP_WAIT_POLICY': 'PASSIVE'} if passive else {})
    ps = [subprocess.Popen([sys.executable, __file__, '--one', str(threads), '--steps', str(steps), '--folder', folder], env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate()[0] for p in ps]
    return [float([ln for ln in o.splitlines() if ln.startswith('RESULT ')][0][7:]) for o in outs]

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--steps', type=int, default=8); ap.add_argument('--no-write', action='store_true')
    ap.add_argument('--one', help=argparse.SUPPRESS); ap.add_argument('--folder', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one == 'auto':
        from tocoad.runtime import ThreadShare
        with ThreadShare(a.folder) as share: print(f'RESULT {work(a.steps, share)}'); return
    if a.one is not None:
        import torch; torch.set_num_threads(int(a.one)); print(f'RESULT {work(a.steps)}'); return
    import tempfile
    cores = len(os.sched_getaffinity(0)); rows = []; folder = tempfile.mkdtemp(prefix='bench-threads-')
    configs = [('solo', 1, cores, False), ('solo', 1, cores, True), ('solo', 1, 1, False), ('solo', 1, 'auto', False),
               ('pair', 2, cores, False), ('pair', 2, cores, True), ('pair', 2, max(1, cores // 2), False), ('pair', 2, 'auto', False)]
    for name, n, t, passive in configs:
        rates = launch(n, t, a.steps, passive, folder)
        rows.append(dict(mode=name, processes=n, threads=t, omp_wait='passive' if passive else 'default', steps_per_s=[round(r, 3) for r in rates], total=round(sum(rates), 3)))
        print(f"{name:4} {n} × {t} thread(s), OMP wait {rows[-1]['omp_wait']:7}: steps/s per process {rows[-1]['steps_per_s']}, together {rows[-1]['total']}", flush=True)
    solo = next(r['total'] for r in rows if r['mode'] == 'solo' and r['threads'] == cores and r['omp_wait'] == 'default')
    for r in rows: r['total_over_solo'] = round(r['total'] / solo, 3)
    if not a.no_write:
        from _results import write_result
        write_result('threads', dict(what=f'F forward + backward (cpu preset, batch 4, 256 x 256), {a.steps} steps per process; one process alone or two at once, by torch threads per process, on {cores} cores', rows=rows))

if __name__ == '__main__': main()
